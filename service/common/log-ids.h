/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* MESSAGE_ID= values for the journal, made once with `systemd-id128 new` (style.md §2.5). */

#define LOG_MESSAGE_DEVICE_ATTACHED "8b0e5e4c1f2a4b6e9d3f7a1c2e4b6d80"
#define LOG_MESSAGE_DEVICE_DETACHED "2f6d9a3b8c1e4f5a9b7d2c6e1a3f5b91"
#define LOG_MESSAGE_PEER_CONNECTED "c41a7e9d3b5f4c2a8e6b1d9f7a3c5e02"
#define LOG_MESSAGE_PEER_DISCONNECTED "5e9b2d7f1a3c4e6b8d2f9a1c7e5b3d13"
#define LOG_MESSAGE_BROKEN_BY_GUEST "a7c3e1f9d5b24a6c8e1b3d7f9a5c2e24"
#define LOG_MESSAGE_WORKER_RESTARTED "3d8f1b6a9c2e4d7b5a1f8c3e6b9d2a35"
