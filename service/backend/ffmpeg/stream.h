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

/* Loop thread. Sets up the eventfd, its source on `event` and the codec thread. */
int ff_stream_start(FfStream *s, sd_event *event);
/* Loop thread: ends the thread and frees s (through class->destroy). Safe from inside a callback. */
void ff_stream_free(FfStream *s);
/* Loop thread: hands a command to the codec thread. */
void ff_stream_submit(FfStream *s, FfWork *w);
FfWork *ff_work_new(FfWorkType type);

/* Codec thread: completion helpers. */
void ff_stream_complete(FfStream *s, FfWork *w);
void ff_stream_buffer_done(FfStream *s, FfWork *w, uint32_t flags, uint64_t timestamp);
void ff_stream_error(FfStream *s, int error);
/* Gives back every buffer of a list with F_ERR. */
void ff_stream_cancel_list(FfStream *s, FfList *l);
