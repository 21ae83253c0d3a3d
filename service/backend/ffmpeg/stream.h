/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The part the libavcodec decoder and encoder share: a stream with one codec thread. The event loop
 * thread hands work to the codec thread as FfWork commands through a mutex-protected FIFO; the codec
 * thread hands results back as FfWork completions through a second FIFO and an eventfd watched by the
 * loop, which delivers the callbacks (backend.h: callbacks only from the event loop). A queue command's
 * node is reused for its buffer completion, so giving a buffer back never allocates.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

typedef struct sd_event_source sd_event_source;

/* What the decoder and encoder backends hold: caps filled in once at new. */
typedef struct FfBackend {
        Backend base;
        sd_event *event;
        unsigned threads;
        VideoCaps caps;
} FfBackend;

/* Allocates an FfBackend for `ops`; fill_caps fills its caps, and without any coded format (on the
 * decoder's input, the encoder's output queue) it fails with -EOPNOTSUPP. */
int ff_backend_new(const BackendOps *ops,
                   const BackendConfig *config,
                   sd_event *event,
                   void (*fill_caps)(VideoCaps *c),
                   Backend **ret);
/* For fill_caps: the raw formats on queue q, each one going with all n_coded coded formats of the other
 * queue, in one buffer (single-buffer planes layout), of one frame size range. */
void ff_caps_set_raw_formats(VideoCaps *c,
                             VideoQueue q,
                             const uint32_t *formats,
                             size_t n,
                             unsigned n_coded,
                             const VideoFrameSize *size);
/* BackendOps functions both backends use as they are. */
void ff_backend_free(Backend *b);
const VideoCaps *ff_backend_get_caps(Backend *b);
int ff_backend_query_control(
        Backend *b, VideoControl control, uint32_t format, uint32_t *values, unsigned max_values);

typedef enum FfWorkType {
        /* loop -> codec thread */
        FF_CMD_QUEUE,
        FF_CMD_DRAIN,
        FF_CMD_CLEAR,
        FF_CMD_CONTROL,
        /* codec thread -> loop */
        FF_DONE_BUFFER,
        FF_DONE_FORMAT,
        FF_DONE_DRAIN,
        FF_DONE_CLEAR,
        FF_DONE_ERROR,
} FfWorkType;

typedef struct FfWork FfWork;
struct FfWork {
        FfWork *next;
        FfWorkType type;
        VideoQueue queue;
        VideoBuffer *buf;
        VideoParams params;   /* QUEUE: the queue's params when it was queued; FORMAT: the new ones */
        uint64_t gen;         /* QUEUE(decoder output): format generation; DRAIN: drain sequence */
        bool force_keyframe;  /* QUEUE(encoder input) */
        bool stale;           /* QUEUE(decoder output): sized for an earlier geometry, held until clear */
        VideoControl control; /* CONTROL */
        uint32_t value;
        int error;                /* ERROR */
        VideoBufferResult result; /* BUFFER */
};

typedef struct FfList {
        FfWork *head, *tail;
        unsigned n;
} FfList;

void ff_list_push(FfList *l, FfWork *w);
FfWork *ff_list_pop(FfList *l);
/* Frees every node without completing anything (stream teardown). */
void ff_list_free(FfList *l);

typedef struct FfStream FfStream;

typedef struct FfStreamClass {
        /* Codec thread: takes ownership of a command. */
        void (*apply)(FfStream *s, FfWork *w);
        /* Codec thread: one bounded unit of work; false when nothing can progress until a command. */
        bool (*step)(FfStream *s);
        /* Loop thread, before format_changed is called: make get_params() report w->params. */
        void (*format_changed)(FfStream *s, const FfWork *w);
        /* Loop thread: frees the codec state once the thread has ended. */
        void (*destroy)(FfStream *s);
} FfStreamClass;

struct FfStream {
        BackendStream base;
        const FfStreamClass *class;
        const BackendStreamCallbacks *cb;
        void *userdata;

        int efd;
        sd_event_source *source;
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        FfList cmds, dones;  /* under lock */
        bool quit;           /* under lock */
        FfWork *spare_error; /* for reporting ENOMEM without allocating */

        /* Loop thread only. */
        VideoParams params[_VIDEO_QUEUE_MAX];
        unsigned held[_VIDEO_QUEUE_MAX];
        bool draining;
        uint64_t drain_seq, drain_cancelled; /* a DRAIN_DONE with seq <= drain_cancelled is dropped */
        uint64_t gen;                        /* decoder: output format generation the guest knows */
        bool in_dispatch, free_requested;
};

/* Routes libav* log messages to our log (debug level); once per process. */
void ff_av_log_setup(void);

/* Loop thread: fills in what every stream has (the caller checked that callbacks has buffer_done). */
void ff_stream_init(FfStream *s,
                    Backend *b,
                    const FfStreamClass *class,
                    const BackendStreamCallbacks *callbacks,
                    void *userdata);
/* Loop thread. Sets up the eventfd, its source on `event` and the codec thread. */
int ff_stream_start(FfStream *s, sd_event *event);
/* Loop thread: ends the thread and frees s (through class->destroy). Safe from inside a callback. */
void ff_stream_free(FfStream *s);
/* Loop thread: hands a command to the codec thread. */
void ff_stream_submit(FfStream *s, FfWork *w);
FfWork *ff_work_new(FfWorkType type);
/* Loop thread: a QUEUE command for buf with the queue's current params, not yet submitted; NULL
 * without memory. */
FfWork *ff_stream_queue_work(FfStream *s, VideoBuffer *buf);
/* Loop thread: the drain and clear commands (clear(INPUT) cancels a pending drain's completion). */
int ff_stream_drain(FfStream *s);
int ff_stream_clear(FfStream *s, VideoQueue queue);

/* BackendOps functions for a BackendStream that is an FfStream (its base is the first member). */
void ff_stream_op_free(BackendStream *bs);
int ff_stream_op_get_params(BackendStream *bs, VideoQueue queue, VideoParams *ret);
int ff_stream_op_drain(BackendStream *bs);
int ff_stream_op_clear(BackendStream *bs, VideoQueue queue);

/* Codec thread: completion helpers. */
void ff_stream_complete(FfStream *s, FfWork *w);
void ff_stream_buffer_done(FfStream *s, FfWork *w, uint32_t flags, uint64_t timestamp);
void ff_stream_error(FfStream *s, int error);
/* Ends a drain: the next buffer of outputs comes back empty with EOS, then *drain_cmd (taken) becomes the
 * DRAIN_DONE completion. False, with nothing done, while outputs is empty. */
bool ff_stream_finish_drain(FfStream *s, FfList *outputs, FfWork **drain_cmd);
/* Gives back every buffer of a list with F_ERR. */
void ff_stream_cancel_list(FfStream *s, FfList *l);
