/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The one interface every codec backend implements (architecture.md §3): null, ffmpeg (libavcodec) and
 * v4l2 (stateful V4L2 codecs through libv4l2). The virtio-video device model (video/) is the only
 * caller. Backends know nothing of vhost or of the virtio-video wire format: everything here is
 * host-typed and already validated by the device model. Format, control, flag and profile/level values
 * are the virtio-video v3 numbers (virtio-video-v3.md §5), so no table is needed to translate them.
 *
 * Threading and callbacks: every op is called on the worker's event loop thread, and every callback is
 * delivered on that thread, from the event loop (never from inside an op call: no re-entrancy). A
 * backend that works on threads (ffmpeg) hands results back through an eventfd or similar event source
 * on the loop it was given. No op may block on codec work, except stream_free(), which may wait for a
 * codec thread to let go of guest memory.
 *
 * Buffers: a VideoBuffer is owned by the device model and lent to the backend by queue_buffer() until the
 * backend hands it back with exactly one buffer_done() call. Its plane memory is guest memory, mapped
 * and bounds-checked; it stays valid until buffer_done() or stream_free().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct sd_event sd_event;
typedef struct Backend Backend;
typedef struct BackendStream BackendStream;

/* virtio-video v3 formats (§5.1). */
typedef enum VideoFormat {
        VIDEO_FORMAT_ARGB8888 = 1,
        VIDEO_FORMAT_BGRA8888 = 2,
        VIDEO_FORMAT_NV12 = 3,
        VIDEO_FORMAT_YUV420 = 4,
        VIDEO_FORMAT_YVU420 = 5,
        VIDEO_FORMAT_MPEG2 = 0x1000,
        VIDEO_FORMAT_MPEG4 = 0x1001,
        VIDEO_FORMAT_H264 = 0x1002,
        VIDEO_FORMAT_HEVC = 0x1003,
        VIDEO_FORMAT_VP8 = 0x1004,
        VIDEO_FORMAT_VP9 = 0x1005,
        VIDEO_FORMAT_FWHT = 0x1006,
} VideoFormat;

static inline bool video_format_is_raw(uint32_t f) {
        return f >= VIDEO_FORMAT_ARGB8888 && f <= VIDEO_FORMAT_YVU420;
}
static inline bool video_format_is_coded(uint32_t f) {
        return f >= VIDEO_FORMAT_MPEG2 && f <= VIDEO_FORMAT_FWHT;
}

/* Host-side queue index (the wire's 0x100/0x101 are mapped by the device model). For a decoder INPUT
 * carries the bitstream and OUTPUT the frames; for an encoder the reverse. */
typedef enum VideoQueue {
        VIDEO_QUEUE_INPUT = 0,
        VIDEO_QUEUE_OUTPUT = 1,
        _VIDEO_QUEUE_MAX,
} VideoQueue;

typedef enum VideoRole {
        VIDEO_ROLE_DECODER,
        VIDEO_ROLE_ENCODER,
} VideoRole;

/* Controls (§5.7). */
typedef enum VideoControl {
        VIDEO_CONTROL_BITRATE = 1,
        VIDEO_CONTROL_PROFILE = 2,
        VIDEO_CONTROL_LEVEL = 3,
        VIDEO_CONTROL_FORCE_KEYFRAME = 4,
        VIDEO_CONTROL_BITRATE_MODE = 5,
        VIDEO_CONTROL_BITRATE_PEAK = 6,
        VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR = 7,
} VideoControl;

#define VIDEO_BITRATE_MODE_VBR 0
#define VIDEO_BITRATE_MODE_CBR 1

/* Buffer result flags (§5.6). */
#define VIDEO_BUFFER_F_ERR 0x01u
#define VIDEO_BUFFER_F_EOS 0x02u
#define VIDEO_BUFFER_F_IFRAME 0x04u
#define VIDEO_BUFFER_F_PFRAME 0x08u
#define VIDEO_BUFFER_F_BFRAME 0x10u

/* Planes layout (§5.5). */
#define VIDEO_PLANES_LAYOUT_SINGLE_BUFFER 1u
#define VIDEO_PLANES_LAYOUT_PER_PLANE 2u

#define VIDEO_MAX_PLANES 8
#define VIDEO_MAX_FORMATS 32 /* per queue; the wire's mask allows 64 */
#define VIDEO_MAX_FRAME_SIZES 8
#define VIDEO_MAX_FRAME_RATES 4

typedef struct VideoRange {
        uint32_t min, max, step;
} VideoRange;

typedef struct VideoFrameSize {
        VideoRange width, height;
        unsigned n_rates;
        VideoRange rates[VIDEO_MAX_FRAME_RATES]; /* frames per second */
} VideoFrameSize;

typedef struct VideoFormatDesc {
        uint32_t format;        /* VideoFormat */
        uint64_t mask;          /* bit i: convertible to format i of the other queue's list (§4.1) */
        uint32_t planes_layout; /* VIDEO_PLANES_LAYOUT_* (raw formats) */
        uint32_t plane_align;
        unsigned n_frames;
        VideoFrameSize frames[VIDEO_MAX_FRAME_SIZES];
} VideoFormatDesc;

typedef struct VideoCaps {
        VideoRole role;
        unsigned n_formats[_VIDEO_QUEUE_MAX];
        VideoFormatDesc formats[_VIDEO_QUEUE_MAX][VIDEO_MAX_FORMATS];
        uint32_t controls; /* bit (1 << VideoControl) for each control the streams accept */
} VideoCaps;

/* The parameters of one queue of a stream: virtio_video_params without the wire-only fields. */
typedef struct VideoParams {
        uint32_t format; /* 0 = not known yet */
        uint32_t frame_width, frame_height;
        uint32_t min_buffers, max_buffers;
        struct {
                uint32_t left, top, width, height;
        } crop;
        uint32_t frame_rate;
        uint32_t num_planes;
        struct {
                uint32_t plane_size, stride;
        } planes[VIDEO_MAX_PLANES];
} VideoParams;

typedef struct VideoPlane {
        const struct iovec *iov; /* host segments of guest memory */
        unsigned n_iov;
        size_t length;           /* capacity: sum of iov lengths */
        uint32_t data_size;      /* input queue: bytes of payload (<= length); output: 0 */
} VideoPlane;

typedef struct VideoBuffer {
        uint32_t resource_id;
        VideoQueue queue;
        uint64_t timestamp; /* input: the guest's timestamp, to be carried to the output it produces */
        unsigned n_planes;
        VideoPlane planes[VIDEO_MAX_PLANES];
        void *backend_data; /* free for the backend while it holds the buffer */
} VideoBuffer;

typedef struct VideoBufferResult {
        uint32_t flags;                    /* VIDEO_BUFFER_F_* */
        uint64_t timestamp;                /* output: timestamp of the input it was made from */
        uint32_t sizes[VIDEO_MAX_PLANES];  /* output: bytes written per plane */
} VideoBufferResult;

typedef struct BackendStreamCallbacks {
        /* A buffer is given back: consumed (input), filled (output), or cancelled (F_ERR). */
        void (*buffer_done)(void *userdata, VideoBuffer *buf, const VideoBufferResult *result);
        /* Decoder: the output format is known or changed (initial headers, or a resolution change).
         * get_params(OUTPUT) already returns the new values (virtio-video-v3.md §7.7d). Output buffers
         * queued before are held until the guest has cleared them (they complete with F_ERR then). */
        void (*format_changed)(void *userdata);
        /* The drain asked by drain() is over: every output was produced and the last output completion
         * carried F_EOS on an empty buffer (sizes 0). When no output buffer was queued at that point, the
         * backend waits for the next one to carry the EOS. */
        void (*drain_done)(void *userdata);
        /* clear(q) is over: every buffer of q held before it has been given back with F_ERR. */
        void (*clear_done)(void *userdata, VideoQueue queue);
        /* The stream cannot go on (device gone, codec failure); negative errno. Buffers may still be
         * given back afterwards; the device model sends the guest an error event. */
        void (*error)(void *userdata, int error);
} BackendStreamCallbacks;

typedef struct BackendConfig {
        const char *device_path; /* v4l2: node to open when device_fd < 0 */
        int device_fd;           /* v4l2: node opened by the manager, or -1; the backend takes it */
        bool force_copy;         /* v4l2: never zero copy (USERPTR): MMAP buffers and one copy */
        unsigned threads;        /* ffmpeg: codec threads per stream, 0 = automatic */
} BackendConfig;

typedef struct BackendOps {
        const char *name; /* "null", "ffmpeg-decoder", "ffmpeg-encoder", "v4l2-decoder", "v4l2-encoder" */

        int (*new)(const BackendConfig *config, sd_event *event, Backend **ret);
        void (*free)(Backend *b);
        const VideoCaps *(*get_caps)(Backend *b);
        /* Profiles or levels supported for a coded format. Returns the count written, -EOPNOTSUPP for a
         * control or format without such a list. */
        int (*query_control)(Backend *b, VideoControl control, uint32_t format, uint32_t *values,
                             unsigned max_values);

        /* A stream with its coded format (decoder input / encoder output). Fails with -EINVAL for a
         * format the backend does not have, -ENOSPC when the backend has no room for another stream. */
        int (*stream_new)(Backend *b,
                          uint32_t coded_format,
                          const BackendStreamCallbacks *callbacks,
                          void *userdata,
                          BackendStream **ret);
        /* Synchronous: after it returns no callback comes for this stream and no buffer is touched.
         * Buffers it still held are not given back; the device model completes them itself. */
        void (*stream_free)(BackendStream *s);

        int (*get_params)(BackendStream *s, VideoQueue queue, VideoParams *ret);
        /* Proposes params for a queue; the backend adjusts what it must (the guest reads them back).
         * -EINVAL for values it cannot adjust to, -EBUSY when the queue cannot change now. */
        int (*set_params)(BackendStream *s, VideoQueue queue, const VideoParams *params);
        /* -EOPNOTSUPP for a control the stream does not have, -EINVAL for a bad value. */
        int (*get_control)(BackendStream *s, VideoControl control, uint32_t *ret);
        int (*set_control)(BackendStream *s, VideoControl control, uint32_t value);

        /* -EINVAL when the buffer does not fit the queue's params, -EBUSY when the queue does not take
         * buffers now. On success the buffer is held until buffer_done(). */
        int (*queue_buffer)(BackendStream *s, VideoBuffer *buf);
        /* Starts a drain (drain_done follows). -EBUSY while one is in progress. */
        int (*drain)(BackendStream *s);
        /* Gives back every held buffer of the queue with F_ERR and resets that direction of the codec
         * (decoder input: a seek; a pending drain is cancelled without drain_done). clear_done follows. */
        int (*clear)(BackendStream *s, VideoQueue queue);
} BackendOps;

/* Every backend object starts with these, so the device model can reach the ops. */
struct Backend {
        const BackendOps *ops;
};
struct BackendStream {
        Backend *backend;
};

/* The registry (backend/registry.c): the backends this build has. The null backends are built in; a
 * name "<family>-..." that is not is looked up in the module backend-<family>.so (backend-module.h), loaded
 * on first use from $VIRTIO_VIDEO_BACKEND_DIR when set, else from BACKEND_MODULE_DIR (config.h). Modules
 * stay loaded. Not thread-safe: call from one thread (the worker's main thread). */
const BackendOps *backend_find(const char *name);
/* Why the last backend_find() (or backend_new()) found nothing for a name it had to load a module for:
 * the module file and the loader's message. NULL when that lookup needed no module. */
const char *backend_find_error(void);
/* NULL-terminated list of the built-in names and those of the modules that load, for --help and errors
 * (loads every module of the directory). */
const char *const *backend_names(void);
int backend_new(const char *name, const BackendConfig *config, sd_event *event, Backend **ret);
Backend *backend_free(Backend *b);
