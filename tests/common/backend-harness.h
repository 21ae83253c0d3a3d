/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Drives a codec backend directly through backend.h, as the device model would, on an sd_event loop:
 * guest memory is plain heap memory, each buffer plane split into several separately allocated iovec
 * segments (so a copy that runs past a segment trips ASan). Callbacks are recorded in order.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

#define HARNESS_MAX_SEGMENTS 8

typedef struct HarnessBuffer {
        VideoBuffer vb;
        struct iovec iov[VIDEO_MAX_PLANES][HARNESS_MAX_SEGMENTS];
        bool queued; /* lent to the backend */
        VideoBufferResult result;
        unsigned done_count;
} HarnessBuffer;

typedef struct Harness {
        sd_event *event;
        Backend *backend;
        BackendStream *stream;
        BackendStreamCallbacks callbacks;

        /* Completed buffers, in completion order (pointers stay owned by the test). */
        HarnessBuffer **done;
        size_t n_done, alloc_done, n_taken;
        unsigned format_changes, drains_done, clears_done[_VIDEO_QUEUE_MAX], errors;
        int last_error;
        unsigned callbacks_after_free; /* must stay 0 */
        bool in_callback;
        unsigned reentrant_calls;     /* a callback delivered from inside an op (must stay 0) */
        bool free_stream_in_callback; /* the next buffer_done frees the stream from inside the callback */
} Harness;

int harness_new(const BackendOps *ops, unsigned threads, Harness **ret);
/* Creates the stream; -errno from the backend. */
int harness_stream_new(Harness *h, uint32_t coded_format);
void harness_stream_free(Harness *h);
void harness_free(Harness *h);

/* A buffer with n_planes planes of the given sizes, each split into n_segments segments of
 * pseudo-random lengths taken from seed. */
HarnessBuffer *harness_buffer_new(
        VideoQueue queue, unsigned n_planes, const size_t sizes[], unsigned n_segments, unsigned seed);
void harness_buffer_free(HarnessBuffer *b);
/* Copies between a linear buffer and plane p of b. */
void harness_buffer_write(HarnessBuffer *b, unsigned plane, const void *data, size_t len);
void harness_buffer_read(const HarnessBuffer *b, unsigned plane, void *data, size_t len);

/* Queues b (input: data_size bytes in plane 0) with the backend; the backend's return value. */
int harness_queue(Harness *h, HarnessBuffer *b, uint64_t timestamp, uint32_t data_size);

/* Runs the loop until pred(h, userdata) holds; false when it did not within a generous safety limit. */
bool harness_run_until(Harness *h, bool (*pred)(Harness *h, void *userdata), void *userdata);
/* Runs the loop until no event is pending and the codec thread had time to finish its work: for
 * asserting that something does NOT happen. Polls the loop with a timeout (not a sleep-based assertion:
 * the condition checked afterwards must hold whatever the timing). */
void harness_settle(Harness *h);
/* Takes the oldest completion not yet taken; NULL when none. */
HarnessBuffer *harness_take_done(Harness *h);
