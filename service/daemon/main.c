/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "daemon/daemon-main.h"

int main(int argc, char **argv) {
        return daemon_main(argc, argv, &probe_v4l2);
}
