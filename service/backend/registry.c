/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend-module.h"
#include "backend/registry.h"
#include "common/log.h"
#include "common/macro.h"
#include "config.h"

#define MODULES_MAX 16u
#define MODULE_OPS_MAX 16u
#define FAMILY_MAX 32u
#define NAMES_MAX 64u

static const BackendOps *const builtin[] = {
        BACKEND_REGISTRY_NULL NULL,
};

/* Defined by linked.c when the program links the codec backends in (libbackend_dep); NULL otherwise. */
extern const BackendOps *const backend_linked_codecs[] __attribute__((weak));

typedef struct LoadedModule {
        char family[FAMILY_MAX];
        const BackendModule *module; /* validated; the handle is never closed */
} LoadedModule;

static LoadedModule loaded[MODULES_MAX];
static unsigned n_loaded;
static char find_error[768];

static void set_error(const char *format, ...) _printf_(1, 2);
static void set_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(find_error, sizeof(find_error), format, ap);
        va_end(ap);
}

static const BackendOps *find_in(const BackendOps *const *table, const char *name) {
        for (size_t i = 0; table && table[i]; i++)
                if (strcmp(table[i]->name, name) == 0)
                        return table[i];
        return NULL;
}

static const char *module_dir(void) {
        const char *d = getenv(BACKEND_MODULE_DIR_ENV);

        return d && d[0] ? d : BACKEND_MODULE_DIR;
}

/* The family of a name: up to the first '-'. Only [a-z0-9_], so it can never leave the directory. */
static bool family_of(const char *name, size_t len, char family[static FAMILY_MAX]) {
        size_t n = strcspn(name, "-");

        if (n > len)
                n = len;
        if (n == 0 || n >= FAMILY_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
                      name[i] == '_'))
                        return false;
        memcpy(family, name, n);
        family[n] = '\0';
        return true;
}

static const char *dl_error(void) {
        const char *e = dlerror();

        return e ?: "unknown error";
}

/* Checks what a module offers before anything of it is used. */
static int module_check(const char *path, const char *family, const BackendModule *m) {
        size_t flen = strlen(family);
        unsigned n = 0;

        if (!m)
                return set_error("%s: %s() returned no module", path, BACKEND_MODULE_ENTRY_NAME), -EINVAL;
        if (m->abi_version != BACKEND_MODULE_ABI_VERSION || m->ops_size != sizeof(BackendOps) ||
            m->config_size != sizeof(BackendConfig))
                return set_error("%s: module ABI version %u (ops %u, config %u bytes), this program needs "
                                 "version %u (%zu, %zu): the module is from another build",
                                 path, m->abi_version, m->ops_size, m->config_size,
                                 BACKEND_MODULE_ABI_VERSION, sizeof(BackendOps), sizeof(BackendConfig)),
                       -EPROTO;
        if (!m->ops)
                return set_error("%s: the module offers no backend", path), -EINVAL;
        for (n = 0; m->ops[n]; n++) {
                const BackendOps *o = m->ops[n];

                if (n >= MODULE_OPS_MAX)
                        return set_error("%s: more than %u backends", path, MODULE_OPS_MAX), -E2BIG;
                if (!o->name || !o->new || !o->free || !o->get_caps || !o->stream_new || !o->stream_free)
                        return set_error("%s: backend %u is incomplete", path, n), -EINVAL;
                if (strncmp(o->name, family, flen) != 0 || (o->name[flen] != '\0' && o->name[flen] != '-'))
                        return set_error("%s: backend '%s' is not of the module's family '%s'", path,
                                         o->name, family),
                               -EINVAL;
                if (find_in(builtin, o->name))
                        return set_error("%s: backend '%s' is built in already", path, o->name), -EEXIST;
        }
        if (n == 0)
                return set_error("%s: the module offers no backend", path), -EINVAL;
        return 0;
}

static const BackendModule *module_get(const char *family) {
        char path[4096];
        BackendModuleEntry entry;
        const BackendModule *m;
        void *dl;
        int k;

        for (unsigned i = 0; i < n_loaded; i++)
                if (strcmp(loaded[i].family, family) == 0)
                        return loaded[i].module;

        k = snprintf(path, sizeof(path), "%s/" BACKEND_MODULE_PREFIX "%s" BACKEND_MODULE_SUFFIX,
                     module_dir(), family);
        if (k < 0 || (size_t) k >= sizeof(path)) {
                set_error("backend module directory %s: path too long", module_dir());
                return NULL;
        }
        if (n_loaded >= MODULES_MAX) {
                set_error("%s: too many backend modules loaded", path);
                return NULL;
        }

        (void) dlerror();
        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                const char *e = dl_error();
                /* glibc's message starts with the file name when the file is the problem */
                if (strncmp(e, path, strlen(path)) == 0)
                        set_error("cannot load backend module %s", e);
                else
                        set_error("cannot load backend module %s: %s", path, e);
                return NULL;
        }
        (void) dlerror();
        entry = (BackendModuleEntry) dlsym(dl, BACKEND_MODULE_ENTRY_NAME);
        if (!entry) {
                set_error("%s is not a backend module: %s", path, dl_error());
                (void) dlclose(dl);
                return NULL;
        }
        m = entry();
        if (module_check(path, family, m) < 0) {
                (void) dlclose(dl);
                return NULL;
        }

        log_debug("Loaded backend module %s.", path);
        memcpy(loaded[n_loaded].family, family, strlen(family) + 1);
        loaded[n_loaded].module = m;
        n_loaded++;
        return m;
}

const BackendOps *backend_find(const char *name) {
        char family[FAMILY_MAX];
        const BackendModule *m;
        const BackendOps *o;

        find_error[0] = '\0';
        if (!name)
                return NULL;
        o = find_in(builtin, name);
        if (!o && backend_linked_codecs)
                o = find_in(backend_linked_codecs, name);
        if (o)
                return o;
        if (!family_of(name, strlen(name), family))
                return NULL; /* not a name a module could offer */

        m = module_get(family);
        if (!m)
                return NULL;
        o = find_in(m->ops, name);
        if (!o)
                set_error("%s/" BACKEND_MODULE_PREFIX "%s" BACKEND_MODULE_SUFFIX " has no backend '%s'",
                          module_dir(), family, name);
        return o;
}

const char *backend_find_error(void) {
        return find_error[0] ? find_error : NULL;
}

static bool add_name(const char **names, unsigned *n, const char *name) {
        if (*n >= NAMES_MAX - 1)
                return false;
        for (unsigned i = 0; i < *n; i++)
                if (strcmp(names[i], name) == 0)
                        return true;
        names[(*n)++] = name;
        return true;
}

static int module_file_filter(const struct dirent *de) {
        size_t len = strlen(de->d_name), pl = strlen(BACKEND_MODULE_PREFIX),
               sl = strlen(BACKEND_MODULE_SUFFIX);

        return len > pl + sl && strncmp(de->d_name, BACKEND_MODULE_PREFIX, pl) == 0 &&
               strcmp(de->d_name + len - sl, BACKEND_MODULE_SUFFIX) == 0;
}

const char *const *backend_names(void) {
        static const char *names[NAMES_MAX];
        struct dirent **entries = NULL;
        char saved_error[sizeof(find_error)];
        unsigned n = 0;
        int k;

        memcpy(saved_error, find_error, sizeof(saved_error));
        for (size_t i = 0; builtin[i]; i++)
                (void) add_name(names, &n, builtin[i]->name);
        for (size_t i = 0; backend_linked_codecs && backend_linked_codecs[i]; i++)
                (void) add_name(names, &n, backend_linked_codecs[i]->name);

        k = scandir(module_dir(), &entries, module_file_filter, alphasort);
        if (k < 0)
                (void) log_debug_errno(-errno, "No backend modules in %s: %m", module_dir());
        for (int i = 0; i < k; i++) {
                const char *family_start = entries[i]->d_name + strlen(BACKEND_MODULE_PREFIX);
                size_t family_len = strlen(family_start) - strlen(BACKEND_MODULE_SUFFIX);
                char family[FAMILY_MAX];
                const BackendModule *m = NULL;

                if (family_of(family_start, family_len, family) && strlen(family) == family_len)
                        m = module_get(family);
                if (!m)
                        log_debug("Skipping %s/%s: %s", module_dir(), entries[i]->d_name,
                                  find_error[0] ? find_error : "not a module name");
                for (size_t j = 0; m && m->ops[j]; j++)
                        (void) add_name(names, &n, m->ops[j]->name);
                free(entries[i]);
        }
        free(entries);
        /* modules loaded before, from another directory */
        for (unsigned i = 0; i < n_loaded; i++)
                for (size_t j = 0; loaded[i].module->ops[j]; j++)
                        (void) add_name(names, &n, loaded[i].module->ops[j]->name);
        names[n] = NULL;
        memcpy(find_error, saved_error, sizeof(find_error));
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
        r = ops->new (config ?: &dflt, event, &b);
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
