/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* virtio-videod's main(), with the host probe as a parameter: the installed binary passes probe_v4l2; the
 * test build passes a fake that reads device descriptions from files. Returns the exit status. */

#include "daemon/probe.h"

int daemon_main(int argc, char **argv, const HostProbe *probe);
