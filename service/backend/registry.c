/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <string.h>

#include "backend/registry.h"
#include "common/macro.h"

static const BackendOps *const registry[] = {
        BACKEND_REGISTRY_ENTRIES NULL,
};

const BackendOps *backend_find(const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; registry[i]; i++)
                if (strcmp(registry[i]->name, name) == 0)
                        return registry[i];
        return NULL;
}

const char *const *backend_names(void) {
        static const char *names[ELEMENTSOF(registry)];

        if (!names[0])
                for (size_t i = 0; registry[i]; i++)
                        names[i] = registry[i]->name;
        return names;
}

int backend_new(const char *name, const BackendConfig *config, sd_event *event, Backend **ret) {
        const BackendOps *ops = backend_find(name);
        BackendConfig dflt = { .device_fd = -1 };
        Backend *b = NULL;
        int r;

        if (!ops)
                return -ENOENT;
        if (!event || !ret)
                return -EINVAL;
        r = ops->new(config ?: &dflt, event, &b);
        if (r < 0)
                return r;
        b->ops = ops;
        *ret = b;
        return 0;
}

Backend *backend_free(Backend *b) {
        if (b)
                b->ops->free(b);
        return NULL;
}
