/* SPDX-License-Identifier: GPL-2.0-or-later */
/* backend-ffmpeg.so: the libavcodec backends as a loadable module (backend-module.h). */
#include "backend/backend-module.h"
#include "backend/registry.h"

BACKEND_MODULE_DEFINE(&backend_ffmpeg_decoder_ops, &backend_ffmpeg_encoder_ops)
