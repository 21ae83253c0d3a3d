/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "device-fixture.h"
#include "vhost/vhost.h"
#include "video/virtio-video-proto.h"

static int device_fixture_pump(void *userdata) {
        return sd_event_run(userdata, 0);
}

void device_fixture_connect(DeviceFixture *f, int client_timeout_ms) {
        VuFrontendOptions fo;
        VideoClientOptions co;
        int fds[2];

        assert_int_equal(video_device_new(f->event, f->backend, &(VideoDeviceOptions){}, &f->device), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(vhost_dev_serve_fd(video_device_get_vhost(f->device), fds[0]), 0);

        vu_frontend_options_init(&fo);
        fo.pump = device_fixture_pump;
        fo.pump_userdata = f->event;
        fo.config_size = sizeof(struct virtio_video_config);
        fo.device_features =
                (1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES) | (1u << VIRTIO_VIDEO_F_RESOURCE_NON_CONTIG);
        assert_int_equal(vu_frontend_new_from_fd(&fo, fds[1], &f->fe), 0);
        assert_int_equal(vu_frontend_start(f->fe), 0);

        video_client_options_init(&co);
        co.pump = device_fixture_pump;
        co.pump_userdata = f->event;
        if (client_timeout_ms > 0)
                co.timeout_ms = client_timeout_ms;
        assert_int_equal(video_client_new(f->fe, &co, &f->c), 0);
        assert_int_equal(video_client_probe(f->c), 0);
}

void device_fixture_disconnect(DeviceFixture *f) {
        video_client_free(f->c);
        f->c = NULL;
        vu_frontend_free(f->fe);
        f->fe = NULL;
        for (int i = 0; i < 100 && sd_event_run(f->event, 0) > 0; i++)
                ;
        video_device_free(f->device);
        f->device = NULL;
        backend_free(f->backend);
        f->backend = NULL;
}
