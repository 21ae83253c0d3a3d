/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-videod with a fake host probe, for tests without V4L2 hardware. A "device node" is a regular file
 * that describes itself as a keyfile:
 *     [V4L2]
 *     Driver=vicodec
 *     Card=vicodec-fake
 *     M2M=true
 *     Roles=decoder;encoder
 * A file that does not parse behaves like a node that is no V4L2 device (ENOTTY).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "daemon/daemon-main.h"

static int fake_probe(void *userdata, int fd, const char *path, HostDeviceInfo *ret) {
        HostDeviceInfo info = {};
        GKeyFile *kf = g_key_file_new();
        char buf[4096], *driver, *card, **roles;
        ssize_t n;
        int r = -ENOTTY;

        n = pread(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0) {
                g_key_file_free(kf);
                return -errno;
        }
        buf[n] = 0;
        if (!g_key_file_load_from_data(kf, buf, (gsize) n, G_KEY_FILE_NONE, NULL))
                goto out;
        driver = g_key_file_get_string(kf, "V4L2", "Driver", NULL);
        card = g_key_file_get_string(kf, "V4L2", "Card", NULL);
        if (!driver || !card) {
                g_free(driver);
                g_free(card);
                goto out;
        }
        g_strlcpy(info.driver, driver, sizeof(info.driver));
        g_strlcpy(info.card, card, sizeof(info.card));
        g_free(driver);
        g_free(card);
        info.m2m = g_key_file_get_boolean(kf, "V4L2", "M2M", NULL);
        roles = g_key_file_get_string_list(kf, "V4L2", "Roles", NULL, NULL);
        for (char **p = roles; p && *p; p++) {
                if (strcmp(*p, "decoder") == 0)
                        info.roles |= HOST_ROLE_DECODER;
                else if (strcmp(*p, "encoder") == 0)
                        info.roles |= HOST_ROLE_ENCODER;
        }
        g_strfreev(roles);
        *ret = info;
        r = 0;
out:
        g_key_file_free(kf);
        return r;
}

static const HostProbe probe_fake = {
        .probe = fake_probe,
};

int main(int argc, char **argv) {
        return daemon_main(argc, argv, &probe_fake);
}
