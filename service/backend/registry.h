/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The backends this build has (style.md §2.2: the only header that tests HAVE_*). Each backend exports
 * one const BackendOps. registry.c has the null backends built in (BACKEND_REGISTRY_NULL); the codec
 * backends are modules (backend-module.h: module-ffmpeg.c, module-v4l2.c) for the worker, and linked in
 * (linked.c: BACKEND_REGISTRY_FFMPEG, BACKEND_REGISTRY_V4L2) for the tests that link libbackend_dep.
 * Lookup itself is declared in backend.h (backend_find(), backend_names(), backend_new(), backend_free()).
 *
 * Adding a backend family "foo" (names "foo-decoder", ...): declare its ops here under its HAVE_* as
 * BACKEND_REGISTRY_FOO and add that to linked.c; give it a module-foo.c with BACKEND_MODULE_DEFINE() and
 * a shared_module 'backend-foo' in backend/meson.build (installed into backendmoduledir), e.g.:
 *     #if HAVE_LIBAVCODEC
 *     extern const BackendOps ffmpeg_decoder_ops, ffmpeg_encoder_ops;
 *     #define BACKEND_REGISTRY_FFMPEG &ffmpeg_decoder_ops, &ffmpeg_encoder_ops,
 *     #endif
 */

#include "backend/backend.h"
#include "config.h"

extern const BackendOps null_decoder_ops; /* "null" */
extern const BackendOps null_encoder_ops; /* "null-encoder" */
#define BACKEND_REGISTRY_NULL &null_decoder_ops, &null_encoder_ops,

#if HAVE_LIBAVCODEC
extern const BackendOps backend_ffmpeg_decoder_ops; /* "ffmpeg-decoder" */
extern const BackendOps backend_ffmpeg_encoder_ops; /* "ffmpeg-encoder" */
#define BACKEND_REGISTRY_FFMPEG &backend_ffmpeg_decoder_ops, &backend_ffmpeg_encoder_ops,
#endif

#if HAVE_LIBV4L2
extern const BackendOps backend_v4l2_decoder_ops; /* "v4l2-decoder" */
extern const BackendOps backend_v4l2_encoder_ops; /* "v4l2-encoder" */
#define BACKEND_REGISTRY_V4L2 &backend_v4l2_decoder_ops, &backend_v4l2_encoder_ops,
#endif

#ifndef BACKEND_REGISTRY_FFMPEG
#define BACKEND_REGISTRY_FFMPEG
#endif
#ifndef BACKEND_REGISTRY_V4L2
#define BACKEND_REGISTRY_V4L2
#endif
