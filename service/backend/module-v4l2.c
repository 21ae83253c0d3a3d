/* SPDX-License-Identifier: GPL-2.0-or-later */
/* backend-v4l2.so: the V4L2 stateful codec backends as a loadable module (backend-module.h). */
#include "backend/backend-module.h"
#include "backend/registry.h"

BACKEND_MODULE_DEFINE(&backend_v4l2_decoder_ops, &backend_v4l2_encoder_ops)
