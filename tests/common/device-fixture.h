/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The worker's device model behind the vhost transport on a socketpair, driven by the frontend library
 * (plays QEMU) and the video client (plays the guest driver), all on one thread: the frontend and the
 * client pump the device's sd-event loop while they wait. Every step is asserted (cmocka).
 */

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "video/device.h"

typedef struct sd_event sd_event;

typedef struct DeviceFixture {
        sd_event *event;
        Backend *backend;
        VideoDevice *device;
        VuFrontend *fe;
        VideoClient *c;
} DeviceFixture;

/* With f->event and f->backend made by the caller: serves the device model on that backend, connects the
 * frontend and the client (client_timeout_ms 0: the client's default) and probes the device. */
void device_fixture_connect(DeviceFixture *f, int client_timeout_ms);

/* Frees the client and the frontend, lets the device see the hangup and drop its state as it would in
 * production, then frees the device and the backend. f->event stays the caller's. */
void device_fixture_disconnect(DeviceFixture *f);
