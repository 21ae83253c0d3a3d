/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A virtio-video v3 *driver* client on top of the vhost-user frontend library (frontend.h): it plays the
 * guest driver DRV-A (virtio-video-v3.md §7.3) against a device behind a started VuFrontend: probe
 * (config, event buffers, QUERY_CAPABILITY of both queues), streams, params in both dialects,
 * resources in guest memory, asynchronous RESOURCE_QUEUE completions, clears, controls and events.
 * Used by the integration tests, `videoctl probe` and the benchmarks.
 *
 * The device is untrusted: every count, length and offset it writes is checked against the bytes it
 * said it wrote and against the buffer we gave it; a violation is -EBADMSG, never a crash. Every wait
 * is bounded by the timeout (-ETIMEDOUT) and calls the pump hook between polls (frontend.h), so a
 * device on an sd-event loop in the same thread makes progress.
 *
 * Return convention of the command helpers: a negative errno when the exchange failed (transport,
 * timeout, malformed reply, -EPROTO for a reply that broke an ordering rule of §7.7c); otherwise 0
 * when the device answered with the expected OK type, or the device's response type (> 0, normally
 * 0x0300..0x0305) when it answered with anything else.
 *
 * Commandq completions are taken in used-ring order, so "cancelled buffers completed before the
 * QUEUE_CLEAR / RESOURCE_DESTROY_ALL / STREAM_DESTROY reply" (§7.7c) is checked exactly: a reply that
 * overtakes a RESOURCE_QUEUE of its stream (and queue) makes the helper return -EPROTO.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontend/frontend.h"

typedef struct VideoClient VideoClient;

#define VC_MAX_FORMATS 64 /* the wire's mask allows 64 (§4.1) */
#define VC_MAX_FRAMES 16  /* frame sizes per format we keep */
#define VC_MAX_RATES 8    /* rate ranges per frame size we keep */
#define VC_MAX_PLANES 8
#define VC_MAX_ENTRIES_PER_PLANE 64
#define VC_MAX_CAPS_LENGTH (1u << 20) /* we refuse a device that asks for more per response */

typedef struct VcConfig {
        uint32_t version;
        uint32_t max_caps_length;
        uint32_t max_resp_length;
        char device_name[33]; /* NUL-terminated copy of the 32 bytes (44-byte layout), or "" */
        uint32_t size;        /* 44, or 12 for a device with the short layout */
} VcConfig;

typedef struct VcRange {
        uint32_t min, max, step;
} VcRange;

typedef struct VcFrameSize {
        VcRange width, height;
        unsigned n_rates;
        VcRange rates[VC_MAX_RATES];
} VcFrameSize;

typedef struct VcFormat {
        uint32_t format;
        uint64_t mask;
        uint32_t planes_layout;
        uint32_t plane_align;
        unsigned n_frames;
        VcFrameSize frames[VC_MAX_FRAMES];
} VcFormat;

typedef struct VcCaps {
        unsigned n_formats;
        VcFormat formats[VC_MAX_FORMATS];
} VcCaps;

/* Host-typed virtio_video_params (+ resource_type of the _EXT dialect). */
typedef struct VcParams {
        uint32_t queue_type;
        uint32_t format;
        uint32_t frame_width, frame_height;
        uint32_t min_buffers, max_buffers;
        struct {
                uint32_t left, top, width, height;
        } crop;
        uint32_t frame_rate;
        uint32_t num_planes;
        struct {
                uint32_t plane_size, stride;
        } planes[VC_MAX_PLANES];
        uint32_t resource_type; /* _EXT only */
} VcParams;

/* One RESOURCE_QUEUE completion. resp_type is the reply's type: OK_RESOURCE_QUEUE, or an error type for
 * a synchronous failure (then timestamp, flags and size are 0). */
typedef struct VcCompletion {
        uint32_t stream_id;
        uint32_t queue_type;
        uint32_t resource_id;
        uint32_t resp_type;
        uint64_t timestamp;
        uint32_t flags;
        uint32_t size;
} VcCompletion;

typedef struct VcEvent {
        uint32_t event_type;
        uint32_t stream_id;
} VcEvent;

typedef struct VideoClientOptions {
        int timeout_ms;  /* every wait; default 5000 */
        VuPumpFunc pump; /* see frontend.h; NULL for a device in another process */
        void *pump_userdata;
        unsigned n_event_buffers; /* eventq buffers posted at probe; default 16 */
} VideoClientOptions;

void video_client_options_init(VideoClientOptions *o);

/* The frontend is borrowed and must be started (vu_frontend_start()). */
int video_client_new(VuFrontend *fe, const VideoClientOptions *o, VideoClient **ret);
VideoClient *video_client_free(VideoClient *c);
static inline void video_client_freep(VideoClient **c) {
        if (*c)
                video_client_free(*c);
}

/* ---- probe (§7.3 step 1) ---------------------------------------------------------------------------- */

/* Reads the config (max_caps_length and max_resp_length must be non-zero), posts the event buffers,
 * sends QUERY_CAPABILITY(INPUT) then (OUTPUT) and parses both with bounds checks (num_descs >= 1, as
 * the driver requires). Returns 0, a device error type (> 0), or a negative errno. */
int video_client_probe(VideoClient *c);
const VcConfig *video_client_get_config(VideoClient *c);
/* After probe: the capabilities of VIRTIO_VIDEO_QUEUE_TYPE_INPUT or _OUTPUT; NULL for anything else. */
const VcCaps *video_client_get_caps(VideoClient *c, uint32_t queue_type);
/* After probe: true when the input formats are raw (an encoder), false for a decoder. */
bool video_client_is_encoder(VideoClient *c);

/* Parses a QUERY_CAPABILITY reply of len bytes (header included; its type is not looked at) the way
 * probe does: 0, or -EBADMSG when a count does not match the payload or num_descs is 0 or above 64.
 * Frame sizes and rates beyond VC_MAX_FRAMES / VC_MAX_RATES are checked and skipped. For the fuzzer. */
int video_client_parse_capability(const void *buf, size_t len, VcCaps *ret);

/* ---- raw commands (negative tests) ------------------------------------------------------------------- */

/* Posts [req (readable), extra (readable, optional), response (resp_cap writable bytes)] on the
 * commandq and kicks. *ret_tag identifies the command. */
int video_client_send(VideoClient *c,
                      const void *req,
                      size_t req_len,
                      const void *extra,
                      size_t extra_len,
                      size_t resp_cap,
                      uint64_t *ret_tag);
/* Waits for the reply of a sent command, copies min(used length, resp_cap) bytes (resp may be NULL) and
 * sets *ret_len (optional) to the used length. The command is forgotten afterwards. */
int video_client_wait_reply(VideoClient *c, uint64_t tag, void *resp, size_t resp_cap, size_t *ret_len);
/* Whether the reply of a sent command has come, without waiting (the rings are not read either: call
 * video_client_poll() or a wait first) and without forgetting the command: 1 with *ret_type (optional)
 * set to the reply's type, 0 when it has not come yet, -ENOENT for a tag not waited for. */
int video_client_reply_type(VideoClient *c, uint64_t tag, uint32_t *ret_type);
/* send + wait_reply. */
int video_client_command(VideoClient *c,
                         const void *req,
                         size_t req_len,
                         const void *extra,
                         size_t extra_len,
                         void *resp,
                         size_t resp_cap,
                         size_t *ret_len);
/* The type of a reply (0 when fewer than 8 bytes were written). */
uint32_t video_client_resp_type(const void *resp, size_t len);

/* ---- streams ----------------------------------------------------------------------------------------- */

int video_client_stream_create(VideoClient *c, uint32_t stream_id, uint32_t coded_format, const char *tag);
int video_client_stream_create_full(VideoClient *c,
                                    uint32_t stream_id,
                                    uint32_t in_mem_type,
                                    uint32_t out_mem_type,
                                    uint32_t coded_format,
                                    const char *tag);
/* Waits for the reply; every RESOURCE_QUEUE of the stream must have completed before it (-EPROTO).
 * Forgets the stream's resources (their guest memory is freed). An OK reply (also through STREAM_DESTROY
 * sent with video_client_send()) consumes the stream: its completions and events not taken yet (the
 * buffers it cancelled, §7.7c) are dropped, and so are its events that come later (events have no order
 * with the commandq), until a STREAM_CREATE of the same id is answered OK. */
int video_client_stream_destroy(VideoClient *c, uint32_t stream_id);
/* The same; *ret_completions (optional) gets how many completions of the stream it dropped, and
 * *ret_cancelled (optional) how many of those carried the ERR flag (the cancelled buffers). */
int video_client_stream_destroy_full(VideoClient *c,
                                     uint32_t stream_id,
                                     unsigned *ret_completions,
                                     unsigned *ret_cancelled);
/* STREAM_DRAIN without waiting, as the driver does; the reply is read later with
 * video_client_wait_reply() on *ret_tag (its type, not an errno, tells the outcome). */
int video_client_stream_drain(VideoClient *c, uint32_t stream_id, uint64_t *ret_tag);

/* ---- params (both dialects) --------------------------------------------------------------------------- */

/* ext: GET_PARAMS_EXT (128-byte reply) or GET_PARAMS (120). The reply must echo queue_type. */
int video_client_get_params(
        VideoClient *c, uint32_t stream_id, uint32_t queue_type, bool ext, VcParams *ret);
/* Queue from p->queue_type. ext: SET_PARAMS_EXT (128-byte request) or SET_PARAMS (120). */
int video_client_set_params(VideoClient *c, uint32_t stream_id, bool ext, const VcParams *p);

/* ---- resources ---------------------------------------------------------------------------------------- */

/* Allocates guest memory for n_planes planes of plane_sizes[i] bytes, each described by
 * entries_per_plane mem entries (1 = contiguous as with vb2-dma-contig; more = scatter-gather chunks that
 * are not adjacent in guest memory), and sends RESOURCE_CREATE (SINGLE_BUFFER, entries in their own
 * descriptor, as DRV-A). On an error reply the memory is freed again. */
int video_client_resource_create(VideoClient *c,
                                 uint32_t stream_id,
                                 uint32_t queue_type,
                                 uint32_t resource_id,
                                 unsigned n_planes,
                                 const uint32_t *plane_sizes,
                                 unsigned entries_per_plane);
/* Copies into / out of a plane of a resource (across its entries). -ENOENT for an unknown resource,
 * -EINVAL for a range beyond the plane. */
int video_client_resource_write(VideoClient *c,
                                uint32_t stream_id,
                                uint32_t queue_type,
                                uint32_t resource_id,
                                unsigned plane,
                                size_t offset,
                                const void *data,
                                size_t len);
int video_client_resource_read(VideoClient *c,
                               uint32_t stream_id,
                               uint32_t queue_type,
                               uint32_t resource_id,
                               unsigned plane,
                               size_t offset,
                               void *data,
                               size_t len);
/* The bytes [offset, offset + len) of a plane of a resource, in place, when they lie in one chunk of
 * guest memory: valid until the resource is destroyed, and the device may write them while the resource
 * is queued. NULL (errno-less) for an unknown resource, a range beyond the plane, or a range that spans
 * chunks; then copy with video_client_resource_read(). */
const uint8_t *video_client_resource_peek(VideoClient *c,
                                          uint32_t stream_id,
                                          uint32_t queue_type,
                                          uint32_t resource_id,
                                          unsigned plane,
                                          size_t offset,
                                          size_t len);
/* RESOURCE_QUEUE without waiting; the completion arrives through video_client_next_completion(). */
int video_client_resource_queue(VideoClient *c,
                                uint32_t stream_id,
                                uint32_t queue_type,
                                uint32_t resource_id,
                                uint64_t timestamp,
                                unsigned n_data_sizes,
                                const uint32_t *data_sizes);
/* Waits for the reply; queued buffers of that queue must have completed before it (-EPROTO). On OK the
 * client forgets the queue's resources. */
int video_client_resource_destroy_all(VideoClient *c, uint32_t stream_id, uint32_t queue_type);
/* Waits for the reply; queued buffers of that queue must have completed before it (-EPROTO). */
int video_client_queue_clear(VideoClient *c, uint32_t stream_id, uint32_t queue_type);
/* RESOURCE_QUEUE commands of a stream and queue not completed yet. */
unsigned video_client_queued(VideoClient *c, uint32_t stream_id, uint32_t queue_type);

/* ---- controls ----------------------------------------------------------------------------------------- */

/* Writes at most max values; *ret_n gets the device's count (values beyond max are dropped). */
int video_client_query_control(
        VideoClient *c, uint32_t control, uint32_t format, uint32_t *values, unsigned max, unsigned *ret_n);
int video_client_get_control(VideoClient *c, uint32_t stream_id, uint32_t control, uint32_t *ret_value);
/* FORCE_KEYFRAME goes as the 16-byte form without a value (§4.13). */
int video_client_set_control(VideoClient *c, uint32_t stream_id, uint32_t control, uint32_t value);

/* ---- completions and events --------------------------------------------------------------------------- */

/* Takes the oldest RESOURCE_QUEUE completion (of any stream): 1 with *ret set, 0 when none is there
 * (wait = false), -ETIMEDOUT when none came (wait = true). */
int video_client_next_completion(VideoClient *c, VcCompletion *ret, bool wait);
/* Takes the oldest event: 1, 0 or -ETIMEDOUT as above. */
int video_client_next_event(VideoClient *c, VcEvent *ret, bool wait);
/* Take what was already collected, without looking at the rings: 1 with *ret set, 0 when none. The rings
 * are read eventq first, so a completion the device made before an event is collected no later than the
 * event; but a completion collected with an event, or after it, may have been made before or after it:
 * the two queues have no order (§7.7e). */
int video_client_pop_completion(VideoClient *c, VcCompletion *ret);
int video_client_pop_event(VideoClient *c, VcEvent *ret);
/* Processes whatever the device has completed, without waiting. */
int video_client_poll(VideoClient *c);
/* Waits until at least one completion or event is pending. */
int video_client_wait_any(VideoClient *c);
/* Event buffers the device wrote with fewer than 8 bytes (a device bug), since creation. */
unsigned video_client_bad_events(VideoClient *c);

/* ---- whole sessions ----------------------------------------------------------------------------------- */

/* One decoded picture handed to the caller: the output planes as the device wrote them. The plane
 * pointers are valid during the callback only (they point into the output buffer itself when a plane is
 * contiguous in guest memory, into a copy otherwise). */
typedef struct VcFrame {
        uint32_t format;
        uint32_t width, height; /* frame_width/height of GET_PARAMS(OUTPUT) */
        struct {
                uint32_t left, top, width, height;
        } crop; /* the visible rectangle of GET_PARAMS(OUTPUT) */
        uint64_t timestamp;
        uint32_t flags;
        unsigned n_planes;
        const uint8_t *planes[VC_MAX_PLANES];
        uint32_t plane_sizes[VC_MAX_PLANES];
        uint32_t strides[VC_MAX_PLANES];
} VcFrame;

typedef struct VcDecodeOptions {
        uint32_t stream_id;
        uint32_t coded_format;  /* 0: the first input format (what the driver does) */
        uint32_t output_format; /* 0: keep the device's; else SET_PARAMS(OUTPUT) after each resolution change
                                 */
        const uint8_t *bitstream;
        size_t size;
        const size_t *chunk_sizes; /* input buffer payloads, in order; NULL: fill each input buffer */
        unsigned n_chunks;
        unsigned n_input_buffers;   /* default 4 */
        unsigned n_output_buffers;  /* default min_buffers of GET_PARAMS(OUTPUT) + 2 */
        uint32_t input_buffer_size; /* default: the device's plane_size of GET_PARAMS(INPUT) */
        unsigned entries_per_plane; /* default 1 */
        bool legacy_params;         /* GET/SET_PARAMS instead of the _EXT commands */
        /* Each output frame, in completion order; return < 0 to abort the decode with that error. */
        int (*frame)(void *userdata, const VcFrame *f);
        void *userdata;
} VcDecodeOptions;

typedef struct VcDecodeResult {
        unsigned frames;
        unsigned resolution_changes;
        unsigned input_completions;
        unsigned error_completions; /* output buffers that came back with ERR (cancelled on a change) */
        uint32_t width, height;     /* last output geometry */
        uint32_t drain_resp_type;   /* the STREAM_DRAIN reply's type */
} VcDecodeResult;

/* A whole decoder session in the driver's order (§7.3 steps 2-12): STREAM_CREATE, GET_PARAMS both,
 * SET_PARAMS(INPUT), input resources, bitstream chunks queued as buffers free up; on each
 * DECODER_RESOLUTION_CHANGED: QUEUE_CLEAR(OUTPUT) + RESOURCE_DESTROY_ALL(OUTPUT) when outputs exist,
 * GET_PARAMS(OUTPUT), new output resources, queued; STREAM_DRAIN after the last chunk, frames until the
 * EOS buffer, then STREAM_DESTROY. An error event for the stream ends it with -EIO; a STREAM_DRAIN
 * answered with an error type (then no EOS buffer comes, §4.4) with -EREMOTEIO. Pictures of the old
 * size that complete after a DECODER_RESOLUTION_CHANGED event (no order holds between the eventq and the
 * commandq, §7.7e) are frames of the old geometry. The stream is destroyed on every outcome but a dead
 * transport. */
int video_client_decode(VideoClient *c, const VcDecodeOptions *o, VcDecodeResult *ret);

typedef struct VcEncodeOptions {
        uint32_t stream_id;
        uint32_t coded_format; /* 0: the first output format */
        uint32_t raw_format;   /* 0: the first input format */
        uint32_t width, height;
        uint32_t frame_rate; /* 0: keep the device's */
        /* n_frames pictures in raw_format, tightly packed planes (I420: w*h Y, then U, then V); copied
         * row by row into the device's layout (strides, one or several planes). */
        const uint8_t *const *frames;
        size_t frame_size;
        unsigned n_frames;
        unsigned n_input_buffers;  /* default 4 */
        unsigned n_output_buffers; /* default 4 */
        bool legacy_params;
        /* Controls set right after SET_PARAMS (SET_CONTROL); 0 values are skipped. */
        uint32_t bitrate;
        /* Each coded buffer, in completion order. */
        int (*packet)(void *userdata, const uint8_t *data, size_t size, uint64_t timestamp, uint32_t flags);
        void *userdata;
} VcEncodeOptions;

typedef struct VcEncodeResult {
        unsigned packets;
        size_t bytes;
        unsigned keyframes;
} VcEncodeResult;

/* A whole encoder session: STREAM_CREATE, params of both queues, resources, every picture queued as
 * input buffers free up, STREAM_DRAIN, coded buffers until EOS, STREAM_DESTROY. A STREAM_DRAIN answered
 * with an error type ends it with -EREMOTEIO (no EOS buffer comes). */
int video_client_encode(VideoClient *c, const VcEncodeOptions *o, VcEncodeResult *ret);
