/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "video/command.h"
#include "video/model.h"
#include "video/virtio-video-proto.h"

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) -offsetof(type, member)))

#define MODEL_MIN_CAPS_LENGTH 1024u
#define MODEL_RESP_LENGTH 1024u
#define MODEL_MAX_CONTROL_VALUES 64u
/* Host segments one mem entry may need: the memory table splits guest RAM in a few regions at most. */
#define MODEL_MAX_SEGS_PER_ENTRY 16u

typedef struct Stream Stream;
typedef struct Pending Pending;

typedef struct Resource {
        uint32_t id;
        uint32_t planes_layout;
        uint32_t num_planes;
        uint32_t plane_offsets[VIDEO_MAX_PLANES];
        uint32_t num_entries[VIDEO_MAX_PLANES];
        bool per_plane; /* entries grouped per plane (DRV), else one buffer cut at plane_offsets */
        unsigned n_entries;
        VideoMemEntry *entries;
        Pending *pending; /* set while queued */
} Resource;

/* A queued buffer, lent to the backend until buffer_done(). The iovecs stay valid while `token` (the
 * RESOURCE_QUEUE request, which holds its memory table reference) is not completed. */
struct Pending {
        VideoBuffer buf;
        Stream *stream;
        Resource *res;
        void *token;
        struct iovec *iov[VIDEO_MAX_PLANES];
};

struct Stream {
        VideoModel *model;
        uint32_t id;
        BackendStream *bs;
        uint32_t mem_type[_VIDEO_QUEUE_MAX];
        uint32_t coded_format;
        Resource *res[_VIDEO_QUEUE_MAX][VIDEO_MODEL_MAX_RESOURCES];
        unsigned n_res[_VIDEO_QUEUE_MAX];
        unsigned n_pending[_VIDEO_QUEUE_MAX];
        void *drain_token;
        void *clear_token[_VIDEO_QUEUE_MAX];
        void *destroy_token[_VIDEO_QUEUE_MAX];
        bool clearing[_VIDEO_QUEUE_MAX]; /* backend clear() issued, clear_done() not yet seen */
};

typedef struct EventBuffer {
        void *token;
        size_t capacity;
} EventBuffer;

struct VideoModel {
        Backend *backend;
        const VideoCaps *caps;
        const VideoModelOps *ops;
        void *userdata;

        uint8_t *caps_resp[_VIDEO_QUEUE_MAX];
        size_t caps_resp_len[_VIDEO_QUEUE_MAX];
        uint32_t max_caps_length;

        Stream *streams[VIDEO_MODEL_MAX_STREAMS];
        unsigned n_streams;
        size_t n_entries_total;

        EventBuffer event_buffers[VIDEO_MODEL_MAX_EVENT_BUFFERS];
        unsigned eb_head, n_eb;
        struct virtio_video_event events[VIDEO_MODEL_MAX_EVENTS];
        unsigned ev_head, n_ev;

        VideoDeviceStats stats;
        RateLimit guest_rl;
};

/* ---- responses ---------------------------------------------------------------------------------------- */

static void complete(VideoModel *m, void *token, const void *resp, size_t len) {
        m->ops->complete(m->userdata, token, resp, len);
}

static void reply_nodata(VideoModel *m, void *token, uint32_t type, uint32_t stream_id) {
        struct virtio_video_cmd_hdr hdr = {
                .type = cpu_to_le32(type),
                .stream_id = cpu_to_le32(stream_id),
        };
        if (type >= VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION)
                m->stats.errors++;
        complete(m, token, &hdr, sizeof(hdr));
}

static void reply_ok(VideoModel *m, void *token, uint32_t stream_id) {
        reply_nodata(m, token, VIRTIO_VIDEO_RESP_OK_NODATA, stream_id);
}

/* Every guest mistake: the mapped 0x03xx error, a rate-limited warning, the error counter. */
static void reply_error(VideoModel *m, void *token, const VideoCmd *cmd, int r) {
        uint32_t resp = video_resp_from_errno(r);

        if (ratelimit_below(&m->guest_rl))
                log_warning_errno(r,
                                  "STREAM_ID=%" PRIu32 ": guest command %s (0x%04" PRIx32
                                  ") failed, answering 0x%04" PRIx32 ": %m",
                                  cmd->stream_id, video_cmd_type_to_string(cmd->type), cmd->type, resp);
        reply_nodata(m, token, resp, cmd->stream_id);
}

static void buffer_reply(
        VideoModel *m, void *token, uint32_t stream_id, uint64_t timestamp, uint32_t flags, uint32_t size) {
        struct virtio_video_resource_queue_resp resp = {
                .hdr.type = cpu_to_le32(VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE),
                .hdr.stream_id = cpu_to_le32(stream_id),
                .timestamp = cpu_to_le64(timestamp),
                .flags = cpu_to_le32(flags),
                .size = cpu_to_le32(size),
        };
        complete(m, token, &resp, sizeof(resp));
}

/* ---- events ------------------------------------------------------------------------------------------- */

static void events_flush(VideoModel *m) {
        while (m->n_ev > 0 && m->n_eb > 0) {
                EventBuffer *eb = &m->event_buffers[m->eb_head];
                void *token = eb->token;
                size_t capacity = eb->capacity;

                m->eb_head = (m->eb_head + 1) % VIDEO_MODEL_MAX_EVENT_BUFFERS;
                m->n_eb--;
                if (capacity < sizeof(struct virtio_video_event)) {
                        /* Useless buffer: give it back empty and keep the event for the next one. */
                        if (ratelimit_below(&m->guest_rl))
                                log_warning(
                                        "Guest posted a %zu-byte event buffer, need 8, returning it unused.",
                                        capacity);
                        complete(m, token, NULL, 0);
                        continue;
                }
                complete(m, token, &m->events[m->ev_head], sizeof(struct virtio_video_event));
                m->ev_head = (m->ev_head + 1) % VIDEO_MODEL_MAX_EVENTS;
                m->n_ev--;
        }
}

static void event_send(VideoModel *m, uint32_t type, uint32_t stream_id) {
        if (m->n_ev >= VIDEO_MODEL_MAX_EVENTS) {
                if (ratelimit_below(&m->guest_rl))
                        log_warning("STREAM_ID=%" PRIu32
                                    ": guest posts no event buffers, dropping event 0x%04" PRIx32 ".",
                                    stream_id, type);
                return;
        }
        if (type == VIRTIO_VIDEO_EVENT_ERROR)
                m->stats.errors++;
        m->events[(m->ev_head + m->n_ev) % VIDEO_MODEL_MAX_EVENTS] = (struct virtio_video_event){
                .event_type = cpu_to_le32(type),
                .stream_id = cpu_to_le32(stream_id),
        };
        m->n_ev++;
        events_flush(m);
}

void video_model_event_buffer(VideoModel *m, void *token, size_t capacity) {
        if (m->n_eb >= VIDEO_MODEL_MAX_EVENT_BUFFERS) {
                /* More than a ring can hold cannot happen with a sane transport; never leak the token. */
                complete(m, token, NULL, 0);
                return;
        }
        m->event_buffers[(m->eb_head + m->n_eb) % VIDEO_MODEL_MAX_EVENT_BUFFERS] = (EventBuffer){
                .token = token,
                .capacity = capacity,
        };
        m->n_eb++;
        events_flush(m);
}

/* ---- streams and resources ---------------------------------------------------------------------------- */

static Stream *stream_find(VideoModel *m, uint32_t id) {
        for (unsigned i = 0; i < m->n_streams; i++)
                if (m->streams[i]->id == id)
                        return m->streams[i];
        return NULL;
}

static Resource *resource_find(Stream *s, VideoQueue q, uint32_t id) {
        for (unsigned i = 0; i < s->n_res[q]; i++)
                if (s->res[q][i]->id == id)
                        return s->res[q][i];
        return NULL;
}

static Pending *pending_free(Pending *p) {
        if (!p)
                return NULL;
        for (unsigned i = 0; i < VIDEO_MAX_PLANES; i++)
                free(p->iov[i]);
        free(p);
        return NULL;
}

/* Detaches a pending buffer from its resource; returns its token. */
static void *pending_take(Pending *p) {
        void *token = p->token;

        assert(p->res->pending == p);
        p->res->pending = NULL;
        assert(p->stream->n_pending[p->buf.queue] > 0);
        p->stream->n_pending[p->buf.queue]--;
        pending_free(p);
        return token;
}

static void resources_free(Stream *s, VideoQueue q) {
        for (unsigned i = 0; i < s->n_res[q]; i++) {
                assert(!s->res[q][i]->pending);
                assert(s->model->n_entries_total >= s->res[q][i]->n_entries);
                s->model->n_entries_total -= s->res[q][i]->n_entries;
                free(s->res[q][i]->entries);
                free(s->res[q][i]);
                s->res[q][i] = NULL;
        }
        s->n_res[q] = 0;
}

/* The backend stream is gone (stream_free() is synchronous): complete or drop everything it held. */
static void stream_release(Stream *s, bool drop) {
        VideoModel *m = s->model;

        for (VideoQueue q = 0; q < _VIDEO_QUEUE_MAX; q++)
                for (unsigned i = 0; i < s->n_res[q]; i++) {
                        Pending *p = s->res[q][i]->pending;
                        if (!p)
                                continue;
                        void *token = pending_take(p);
                        if (drop)
                                m->ops->drop(m->userdata, token);
                        else
                                buffer_reply(m, token, s->id, 0, VIDEO_BUFFER_F_ERR, 0);
                }

        /* A drain or clear the destroy interrupted gets INVALID_OPERATION (CROSVM, §4.4). */
        void **tokens[] = { &s->drain_token, &s->clear_token[0], &s->clear_token[1] };
        for (size_t i = 0; i < ELEMENTSOF(tokens); i++) {
                void *token = TAKE_PTR(*tokens[i]);
                if (!token)
                        continue;
                if (drop)
                        m->ops->drop(m->userdata, token);
                else
                        reply_nodata(m, token, VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION, s->id);
        }
        /* Resources are forgotten either way: a waiting RESOURCE_DESTROY_ALL has succeeded. */
        for (VideoQueue q = 0; q < _VIDEO_QUEUE_MAX; q++) {
                void *token = TAKE_PTR(s->destroy_token[q]);
                if (!token)
                        continue;
                if (drop)
                        m->ops->drop(m->userdata, token);
                else
                        reply_ok(m, token, s->id);
        }
}

static void stream_free(Stream *s, bool drop) {
        VideoModel *m = s->model;

        if (s->bs)
                m->backend->ops->stream_free(s->bs);
        s->bs = NULL;
        stream_release(s, drop);
        for (VideoQueue q = 0; q < _VIDEO_QUEUE_MAX; q++)
                resources_free(s, q);

        for (unsigned i = 0; i < m->n_streams; i++)
                if (m->streams[i] == s) {
                        m->streams[i] = m->streams[--m->n_streams];
                        m->streams[m->n_streams] = NULL;
                        break;
                }
        m->stats.active_streams = m->n_streams;
        free(s);
}

/* ---- backend callbacks -------------------------------------------------------------------------------- */

static void on_buffer_done(void *userdata, VideoBuffer *buf, const VideoBufferResult *result) {
        Stream *s = userdata;
        VideoModel *m = s->model;
        Pending *p = container_of(buf, Pending, buf);
        VideoQueue q = buf->queue;
        uint64_t timestamp;
        uint32_t size = 0;

        assert(p->stream == s);
        if (q == VIDEO_QUEUE_OUTPUT) {
                /* §4.6: an output carries the timestamp of the input it was made from. */
                timestamp = result->timestamp;
                for (unsigned i = 0; i < buf->n_planes; i++) {
                        uint32_t k = (uint32_t) MIN((size_t) result->sizes[i], buf->planes[i].length);
                        size += k;
                }
                if (!(result->flags & (VIDEO_BUFFER_F_ERR | VIDEO_BUFFER_F_EOS)))
                        m->stats.bytes_out += size;
        } else
                timestamp = buf->timestamp;

        log_debug("STREAM_ID=%" PRIu32 ": %s resource %" PRIu32 " done, flags 0x%" PRIx32 ", size %" PRIu32,
                  s->id, video_queue_to_string(q), buf->resource_id, result->flags, size);
        void *token = pending_take(p);
        buffer_reply(m, token, s->id, timestamp, result->flags, size);
}

static void on_format_changed(void *userdata) {
        Stream *s = userdata;

        log_debug("STREAM_ID=%" PRIu32 ": output format changed", s->id);
        if (s->model->caps->role == VIDEO_ROLE_DECODER)
                event_send(s->model, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED, s->id);
}

static void on_drain_done(void *userdata) {
        Stream *s = userdata;
        void *token = TAKE_PTR(s->drain_token);

        log_debug("STREAM_ID=%" PRIu32 ": drain done", s->id);
        /* CROSVM ordering (§4.4): the EOS buffer was completed before this. */
        if (token)
                reply_ok(s->model, token, s->id);
}

static void on_clear_done(void *userdata, VideoQueue q) {
        Stream *s = userdata;
        VideoModel *m = s->model;
        void *token;

        log_debug("STREAM_ID=%" PRIu32 ": %s clear done", s->id, video_queue_to_string(q));
        s->clearing[q] = false;

        /* Clearing the input cancels a drain without drain_done (backend.h). */
        if (q == VIDEO_QUEUE_INPUT) {
                token = TAKE_PTR(s->drain_token);
                if (token)
                        reply_nodata(m, token, VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION, s->id);
        }
        token = TAKE_PTR(s->clear_token[q]);
        if (token)
                reply_ok(m, token, s->id);
        token = TAKE_PTR(s->destroy_token[q]);
        if (token) {
                if (s->n_pending[q] == 0) {
                        resources_free(s, q);
                        reply_ok(m, token, s->id);
                } else /* a backend that broke its contract: do not free resources it still uses */
                        reply_nodata(m, token, VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION, s->id);
        }
}

static void on_error(void *userdata, int error) {
        Stream *s = userdata;

        log_warning_errno(error, "STREAM_ID=%" PRIu32 ": codec stream failed: %m", s->id);
        event_send(s->model, VIRTIO_VIDEO_EVENT_ERROR, s->id);
}

static const BackendStreamCallbacks stream_callbacks = {
        .buffer_done = on_buffer_done,
        .format_changed = on_format_changed,
        .drain_done = on_drain_done,
        .clear_done = on_clear_done,
        .error = on_error,
};

/* ---- commands ----------------------------------------------------------------------------------------- */

static bool caps_have_format(const VideoCaps *caps, VideoQueue q, uint32_t format) {
        for (unsigned i = 0; i < caps->n_formats[q]; i++)
                if (caps->formats[q][i].format == format)
                        return true;
        return false;
}

static VideoQueue coded_queue(VideoModel *m) {
        return m->caps->role == VIDEO_ROLE_DECODER ? VIDEO_QUEUE_INPUT : VIDEO_QUEUE_OUTPUT;
}

static int cmd_query_capability(VideoModel *m, const VideoCmd *c, size_t capacity, void *token) {
        VideoQueue q = c->queue.queue;

        if (capacity < m->caps_resp_len[q])
                return -ENOMEM;
        complete(m, token, m->caps_resp[q], m->caps_resp_len[q]);
        return 0;
}

static int cmd_stream_create(VideoModel *m, const VideoCmd *c, void *token) {
        _cleanup_free_ Stream *s = NULL;
        int r;

        if (stream_find(m, c->stream_id))
                return -ESRCH;
        if (m->n_streams >= VIDEO_MODEL_MAX_STREAMS)
                return -ENOSPC;
        /* Only guest pages: VIRTIO_OBJECT (feature bit 2) is not offered. */
        if (c->stream_create.in_mem_type != VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES ||
            c->stream_create.out_mem_type != VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES)
                return -EINVAL;
        if (!caps_have_format(m->caps, coded_queue(m), c->stream_create.coded_format))
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->model = m;
        s->id = c->stream_id;
        s->coded_format = c->stream_create.coded_format;
        s->mem_type[VIDEO_QUEUE_INPUT] = c->stream_create.in_mem_type;
        s->mem_type[VIDEO_QUEUE_OUTPUT] = c->stream_create.out_mem_type;
        r = m->backend->ops->stream_new(m->backend, s->coded_format, &stream_callbacks, s, &s->bs);
        if (r < 0)
                return r == -ENOSPC || r == -ENOMEM ? r : -EINVAL;

        log_debug("STREAM_ID=%" PRIu32 ": created, coded format 0x%04" PRIx32 ", tag '%s'", s->id,
                  s->coded_format, c->stream_create.tag);
        m->streams[m->n_streams++] = TAKE_PTR(s);
        m->stats.streams_created++;
        m->stats.active_streams = m->n_streams;
        reply_ok(m, token, c->stream_id);
        return 0;
}

static int cmd_stream_destroy(VideoModel *m, Stream *s, void *token) {
        uint32_t id = s->id;

        /* §7.7c: cancelled buffers, then the interrupted drain/clear, then this reply. */
        stream_free(s, /* drop= */ false);
        reply_ok(m, token, id);
        return 0;
}

static int cmd_stream_drain(VideoModel *m, Stream *s, void *token) {
        int r;

        if (s->drain_token || s->clearing[VIDEO_QUEUE_INPUT] || s->clearing[VIDEO_QUEUE_OUTPUT])
                return -EBUSY;
        r = m->backend->ops->drain(s->bs);
        if (r < 0)
                return r == -EBUSY ? r : -EPROTO;
        s->drain_token = token;
        return 0;
}

static int check_entries(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        const typeof(c->resource_create) *rc = &c->resource_create;
        struct iovec iov[MODEL_MAX_SEGS_PER_ENTRY];
        uint64_t total = 0;

        for (unsigned i = 0; i < rc->n_entries; i++) {
                int r;

                if (rc->entries[i].length == 0)
                        return -EINVAL;
                r = m->ops->translate(m->userdata, token, rc->entries[i].addr, rc->entries[i].length, iov,
                                      ELEMENTSOF(iov));
                if (r < 0)
                        return r == -E2BIG ? -EINVAL : -EFAULT;
                total += rc->entries[i].length;
        }
        /* One buffer cut at plane_offsets: each plane starts inside it, in order. */
        if (rc->num_entries[0] == rc->sum_entries && rc->num_planes > 1)
                for (unsigned i = 0; i < rc->num_planes; i++) {
                        if (rc->plane_offsets[i] >= total)
                                return -EINVAL;
                        if (i > 0 && rc->plane_offsets[i] < rc->plane_offsets[i - 1])
                                return -EINVAL;
                }
        return 0;
}

static int cmd_resource_create(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        const typeof(c->resource_create) *rc = &c->resource_create;
        VideoQueue q = rc->queue;
        _cleanup_free_ Resource *res = NULL;
        bool per_plane = true;
        int r;

        if (s->destroy_token[q])
                return -EBUSY;
        if (resource_find(s, q, rc->resource_id))
                return -EBADSLT;
        if (s->n_res[q] >= VIDEO_MODEL_MAX_RESOURCES ||
            m->n_entries_total + rc->n_entries > VIDEO_MODEL_MAX_ENTRIES_TOTAL)
                return -ENOSPC;
        /* Guest pages: every entry is listed (10.11). */
        if (rc->n_entries != rc->sum_entries)
                return -EINVAL;
        for (unsigned i = 0; i < rc->num_planes; i++)
                if (rc->num_entries[i] == 0)
                        per_plane = false;
        /* Without per-plane groups it must be SPEC-v3's single buffer: all entries counted in plane 0. */
        if (!per_plane && (rc->planes_layout != VIDEO_PLANES_LAYOUT_SINGLE_BUFFER ||
                           rc->num_entries[0] != rc->sum_entries))
                return -EINVAL;
        r = check_entries(m, s, c, token);
        if (r < 0)
                return r;

        res = calloc(1, sizeof(*res));
        if (!res)
                return -ENOMEM;
        res->entries = calloc(rc->n_entries, sizeof(VideoMemEntry));
        if (!res->entries)
                return -ENOMEM;
        memcpy(res->entries, rc->entries, rc->n_entries * sizeof(VideoMemEntry));
        res->n_entries = rc->n_entries;
        res->id = rc->resource_id;
        res->planes_layout = rc->planes_layout;
        res->num_planes = rc->num_planes;
        res->per_plane = per_plane;
        memcpy(res->plane_offsets, rc->plane_offsets, sizeof(res->plane_offsets));
        memcpy(res->num_entries, rc->num_entries, sizeof(res->num_entries));

        log_debug("STREAM_ID=%" PRIu32 ": %s resource %" PRIu32 " created, %" PRIu32 " planes, %u entries",
                  s->id, video_queue_to_string(q), res->id, res->num_planes, res->n_entries);
        m->n_entries_total += rc->n_entries;
        s->res[q][s->n_res[q]++] = TAKE_PTR(res);
        reply_ok(m, token, s->id);
        return 0;
}

/* Translates entries [first, first + n) into a fresh iovec array. */
/* Translates entries [first, first + n) into a fresh iovec array, sized to the segments it needs. */
static int translate_entries(VideoModel *m,
                             void *token,
                             const Resource *res,
                             unsigned first,
                             unsigned n,
                             struct iovec **ret,
                             unsigned *ret_n,
                             size_t *ret_len) {
        _cleanup_free_ struct iovec *iov = NULL;
        unsigned n_iov = 0, cap = 0;
        size_t len = 0;

        for (unsigned i = first; i < first + n; i++) {
                struct iovec seg[MODEL_MAX_SEGS_PER_ENTRY];
                int r = m->ops->translate(m->userdata, token, res->entries[i].addr, res->entries[i].length, seg,
                                          ELEMENTSOF(seg));
                if (r < 0) /* the memory table changed under the resource (vhost-user-backend.md §5.9) */
                        return -EFAULT;
                if (n_iov + (unsigned) r > cap) {
                        unsigned ncap = MAX(cap * 2, n_iov + (unsigned) r);
                        struct iovec *t = reallocarray(iov, MAX(ncap, 4u), sizeof(struct iovec));
                        if (!t)
                                return -ENOMEM;
                        iov = t;
                        cap = MAX(ncap, 4u);
                }
                memcpy(iov + n_iov, seg, (size_t) r * sizeof(struct iovec));
                n_iov += (unsigned) r;
                len += res->entries[i].length;
        }
        *ret = TAKE_PTR(iov);
        *ret_n = n_iov;
        *ret_len = len;
        return 0;
}

/* Copies the part [off, off + len) of src into a fresh iovec array. */
static int
iov_slice(const struct iovec *src, unsigned n, size_t off, size_t len, struct iovec **ret, unsigned *ret_n) {
        _cleanup_free_ struct iovec *iov = NULL;
        unsigned first = 0, k = 0;

        while (first < n && off >= src[first].iov_len) {
                off -= src[first].iov_len;
                first++;
        }
        iov = calloc(MAX(n - first, 1u), sizeof(struct iovec));
        if (!iov)
                return -ENOMEM;
        for (unsigned i = first; i < n && len > 0; i++) {
                size_t take = MIN(src[i].iov_len - off, len);
                iov[k++] = (struct iovec){ (uint8_t *) src[i].iov_base + off, take };
                len -= take;
                off = 0;
        }
        *ret = TAKE_PTR(iov);
        *ret_n = k;
        return 0;
}

static int
pending_build(VideoModel *m, Stream *s, Resource *res, const VideoCmd *c, void *token, Pending **ret) {
        VideoQueue q = c->resource_queue.queue;
        Pending *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->stream = s;
        p->res = res;
        p->token = token;
        p->buf = (VideoBuffer){
                .resource_id = res->id,
                .queue = q,
                .timestamp = q == VIDEO_QUEUE_INPUT ? c->resource_queue.timestamp : 0,
                .n_planes = res->num_planes,
        };

        if (res->per_plane) {
                unsigned first = 0;
                for (unsigned i = 0; i < res->num_planes; i++) {
                        _cleanup_free_ struct iovec *all = NULL;
                        unsigned n_all;
                        size_t len, off = res->plane_offsets[i];

                        r = translate_entries(m, token, res, first, res->num_entries[i], &all, &n_all, &len);
                        if (r < 0)
                                goto fail;
                        first += res->num_entries[i];
                        if (off >= len) {
                                r = -EINVAL;
                                goto fail;
                        }
                        r = iov_slice(all, n_all, off, len - off, &p->iov[i], &p->buf.planes[i].n_iov);
                        if (r < 0)
                                goto fail;
                        p->buf.planes[i].length = len - off;
                }
        } else {
                _cleanup_free_ struct iovec *all = NULL;
                unsigned n_all;
                size_t len;

                r = translate_entries(m, token, res, 0, res->n_entries, &all, &n_all, &len);
                if (r < 0)
                        goto fail;
                for (unsigned i = 0; i < res->num_planes; i++) {
                        size_t off = res->plane_offsets[i];
                        size_t end = i + 1 < res->num_planes ? res->plane_offsets[i + 1] : len;

                        r = iov_slice(all, n_all, off, end - off, &p->iov[i], &p->buf.planes[i].n_iov);
                        if (r < 0)
                                goto fail;
                        p->buf.planes[i].length = end - off;
                }
        }
        for (unsigned i = 0; i < res->num_planes; i++)
                p->buf.planes[i].iov = p->iov[i];

        if (q == VIDEO_QUEUE_INPUT) {
                /* Linux sends one data size per plane (vb2 bytesused). */
                if (c->resource_queue.num_data_sizes != res->num_planes) {
                        r = -EINVAL;
                        goto fail;
                }
                for (unsigned i = 0; i < res->num_planes; i++) {
                        if (c->resource_queue.data_sizes[i] > p->buf.planes[i].length) {
                                r = -EINVAL;
                                goto fail;
                        }
                        p->buf.planes[i].data_size = c->resource_queue.data_sizes[i];
                }
        }
        *ret = p;
        return 0;
fail:
        pending_free(p);
        return r;
}

static int cmd_resource_queue(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        VideoQueue q = c->resource_queue.queue;
        Resource *res;
        Pending *p;
        uint64_t bytes = 0;
        int r;

        res = resource_find(s, q, c->resource_queue.resource_id);
        if (!res)
                return -EBADSLT;
        /* §4.6, §4.8: nothing is queued while a clear runs, and no input while a drain runs. */
        if (s->clearing[q] || s->destroy_token[q] || (q == VIDEO_QUEUE_INPUT && s->drain_token))
                return -EBUSY;
        if (res->pending)
                return -EINVAL;

        r = pending_build(m, s, res, c, token, &p);
        if (r < 0)
                return r;
        r = m->backend->ops->queue_buffer(s->bs, &p->buf);
        if (r < 0) {
                pending_free(p);
                return r == -EBUSY || r == -EINVAL ? r : -EPROTO;
        }
        res->pending = p;
        s->n_pending[q]++;
        for (unsigned i = 0; i < p->buf.n_planes; i++)
                bytes += p->buf.planes[i].data_size;
        m->stats.bytes_in += bytes;
        log_debug("STREAM_ID=%" PRIu32 ": %s resource %" PRIu32 " queued, %" PRIu64 " bytes", s->id,
                  video_queue_to_string(q), res->id, bytes);
        return 0;
}

static int cmd_resource_destroy_all(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        VideoQueue q = c->queue.queue;
        int r;

        if (s->destroy_token[q])
                return -EBUSY;
        if (s->n_pending[q] == 0 && !s->clearing[q]) {
                resources_free(s, q);
                reply_ok(m, token, s->id);
                return 0;
        }
        /* Buffers in flight: get them back first (ERR completions), reply at clear_done (§4.7). */
        if (!s->clearing[q]) {
                r = m->backend->ops->clear(s->bs, q);
                if (r < 0)
                        return -EPROTO;
                s->clearing[q] = true;
        }
        s->destroy_token[q] = token;
        return 0;
}

static int cmd_queue_clear(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        VideoQueue q = c->queue.queue;
        int r;

        if (s->clearing[q] || s->destroy_token[q])
                return -EBUSY;
        /* The backend's clear is asynchronous: the reply waits for clear_done, after every cancelled
         * buffer's completion (§7.7c). */
        r = m->backend->ops->clear(s->bs, q);
        if (r < 0)
                return -EPROTO;
        s->clearing[q] = true;
        s->clear_token[q] = token;
        return 0;
}

static void params_to_wire(const VideoParams *p, VideoQueue q, struct virtio_video_params *w) {
        *w = (struct virtio_video_params){
                .queue_type = cpu_to_le32(video_queue_to_wire(q)),
                .format = cpu_to_le32(p->format),
                .frame_width = cpu_to_le32(p->frame_width),
                .frame_height = cpu_to_le32(p->frame_height),
                .min_buffers = cpu_to_le32(p->min_buffers),
                .max_buffers = cpu_to_le32(p->max_buffers),
                .crop.left = cpu_to_le32(p->crop.left),
                .crop.top = cpu_to_le32(p->crop.top),
                .crop.width = cpu_to_le32(p->crop.width),
                .crop.height = cpu_to_le32(p->crop.height),
                .frame_rate = cpu_to_le32(p->frame_rate),
                .num_planes = cpu_to_le32(MIN(p->num_planes, (uint32_t) VIDEO_MAX_PLANES)),
        };
        for (unsigned i = 0; i < VIDEO_MAX_PLANES && i < p->num_planes; i++) {
                w->plane_formats[i].plane_size = cpu_to_le32(p->planes[i].plane_size);
                w->plane_formats[i].stride = cpu_to_le32(p->planes[i].stride);
        }
}

static int cmd_get_params(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        VideoQueue q = c->queue.queue;
        struct virtio_video_get_params_ext_resp resp = {};
        VideoParams p = {};
        int r;

        r = m->backend->ops->get_params(s->bs, q, &p);
        if (r < 0)
                return r == -EINVAL ? r : -EPROTO;
        resp.hdr.type = cpu_to_le32(VIRTIO_VIDEO_RESP_OK_GET_PARAMS);
        resp.hdr.stream_id = cpu_to_le32(s->id);
        /* §4.9: queue_type echoed, in the dialect asked for (120 or 128 bytes). */
        params_to_wire(&p, q, &resp.params.base);
        if (c->get_params_ext) {
                resp.params.resource_type = cpu_to_le32(s->mem_type[q]);
                complete(m, token, &resp, sizeof(struct virtio_video_get_params_ext_resp));
        } else
                complete(m, token, &resp, sizeof(struct virtio_video_get_params_resp));
        return 0;
}

static int cmd_set_params(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        VideoQueue q = c->set_params.queue;
        VideoParams cur = {}, p = c->set_params.params;
        int r;

        if (c->set_params.ext && c->set_params.resource_type != s->mem_type[q])
                return -EINVAL;
        r = m->backend->ops->get_params(s->bs, q, &cur);
        if (r < 0)
                return -EPROTO;
        /* The driver never fills crop (10.21): zero means "no change". Buffer counts are read-only. */
        if (p.crop.left == 0 && p.crop.top == 0 && p.crop.width == 0 && p.crop.height == 0)
                p.crop = cur.crop;
        p.min_buffers = cur.min_buffers;
        p.max_buffers = cur.max_buffers;
        r = m->backend->ops->set_params(s->bs, q, &p);
        if (r < 0)
                return r == -EBUSY ? -EBUSY : -EINVAL;
        reply_ok(m, token, s->id);
        return 0;
}

static int cmd_query_control(VideoModel *m, const VideoCmd *c, size_t capacity, void *token) {
        uint32_t values[MODEL_MAX_CONTROL_VALUES];
        uint8_t buf[sizeof(struct virtio_video_query_control_resp) + sizeof(values)];
        struct virtio_video_query_control_resp resp = {};
        unsigned max;
        int r;

        if (c->query_control.control != VIDEO_CONTROL_PROFILE &&
            c->query_control.control != VIDEO_CONTROL_LEVEL)
                return -EOPNOTSUPP;
        if (capacity < sizeof(resp))
                return -ENOMEM;
        max = MIN((capacity - sizeof(resp)) / sizeof(uint32_t), (size_t) MODEL_MAX_CONTROL_VALUES);
        r = m->backend->ops->query_control(m->backend, c->query_control.control, c->query_control.format,
                                           values, max);
        if (r < 0)
                return -EOPNOTSUPP;
        if ((unsigned) r > max)
                return -EPROTO;
        resp.hdr.type = cpu_to_le32(VIRTIO_VIDEO_RESP_OK_QUERY_CONTROL);
        resp.num = cpu_to_le32((uint32_t) r);
        memcpy(buf, &resp, sizeof(resp));
        for (int i = 0; i < r; i++) {
                le32 v = cpu_to_le32(values[i]);
                memcpy(buf + sizeof(resp) + i * sizeof(v), &v, sizeof(v));
        }
        complete(m, token, buf, sizeof(resp) + (size_t) r * sizeof(uint32_t));
        return 0;
}

static int cmd_get_control(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        struct virtio_video_get_control_resp resp = {};
        uint32_t value = 0;
        int r;

        /* FORCE_KEYFRAME is a button: nothing to read (CROSVM refuses it too). */
        if (c->get_control.control == VIDEO_CONTROL_FORCE_KEYFRAME)
                return -EOPNOTSUPP;
        r = m->backend->ops->get_control(s->bs, c->get_control.control, &value);
        if (r < 0)
                return r == -EINVAL ? -EINVAL : -EOPNOTSUPP;
        resp.hdr.type = cpu_to_le32(VIRTIO_VIDEO_RESP_OK_GET_CONTROL);
        resp.hdr.stream_id = cpu_to_le32(s->id);
        resp.value = cpu_to_le32(value);
        complete(m, token, &resp, sizeof(resp));
        return 0;
}

static int cmd_set_control(VideoModel *m, Stream *s, const VideoCmd *c, void *token) {
        uint32_t control = c->set_control.control, value = c->set_control.value;
        int r;

        switch (control) {
        case VIDEO_CONTROL_FORCE_KEYFRAME:
                value = 1;
                break;
        case VIDEO_CONTROL_BITRATE_MODE:
                if (value != VIDEO_BITRATE_MODE_VBR && value != VIDEO_BITRATE_MODE_CBR)
                        return -EINVAL;
                break;
        case VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR:
                if (value > 1)
                        return -EINVAL;
                break;
        default:
                break;
        }
        r = m->backend->ops->set_control(s->bs, control, value);
        if (r < 0)
                return r == -EINVAL || r == -EBUSY ? r : -EOPNOTSUPP;
        reply_ok(m, token, s->id);
        return 0;
}

static int dispatch(VideoModel *m, const VideoCmd *c, size_t capacity, void *token) {
        Stream *s;

        switch (c->type) {
        case VIRTIO_VIDEO_CMD_QUERY_CAPABILITY:
                return cmd_query_capability(m, c, capacity, token);
        case VIRTIO_VIDEO_CMD_QUERY_CONTROL:
                return cmd_query_control(m, c, capacity, token);
        case VIRTIO_VIDEO_CMD_STREAM_CREATE:
                return cmd_stream_create(m, c, token);
        default:
                break;
        }

        s = stream_find(m, c->stream_id);
        if (!s)
                return -ESRCH;

        switch (c->type) {
        case VIRTIO_VIDEO_CMD_STREAM_DESTROY:
                return cmd_stream_destroy(m, s, token);
        case VIRTIO_VIDEO_CMD_STREAM_DRAIN:
                return cmd_stream_drain(m, s, token);
        case VIRTIO_VIDEO_CMD_RESOURCE_CREATE:
                return cmd_resource_create(m, s, c, token);
        case VIRTIO_VIDEO_CMD_RESOURCE_QUEUE:
                return cmd_resource_queue(m, s, c, token);
        case VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL:
                return cmd_resource_destroy_all(m, s, c, token);
        case VIRTIO_VIDEO_CMD_QUEUE_CLEAR:
                return cmd_queue_clear(m, s, c, token);
        case VIRTIO_VIDEO_CMD_GET_PARAMS:
        case VIRTIO_VIDEO_CMD_GET_PARAMS_EXT:
                return cmd_get_params(m, s, c, token);
        case VIRTIO_VIDEO_CMD_SET_PARAMS:
        case VIRTIO_VIDEO_CMD_SET_PARAMS_EXT:
                return cmd_set_params(m, s, c, token);
        case VIRTIO_VIDEO_CMD_GET_CONTROL:
                return cmd_get_control(m, s, c, token);
        case VIRTIO_VIDEO_CMD_SET_CONTROL:
                return cmd_set_control(m, s, c, token);
        default:
                return -ENOSYS;
        }
}

void video_model_request(
        VideoModel *m, const struct iovec *rd, unsigned n_rd, size_t resp_capacity, void *token) {
        VideoCmd c;
        int r;

        r = video_cmd_parse(rd, n_rd, &c);
        if (r < 0) {
                reply_error(m, token, &c, r);
                return;
        }
        log_debug("STREAM_ID=%" PRIu32 ": %s", c.stream_id, video_cmd_type_to_string(c.type));
        /* On success the command has completed its token or kept it for later. */
        r = dispatch(m, &c, resp_capacity, token);
        if (r < 0)
                reply_error(m, token, &c, r);
        video_cmd_done(&c);
}

/* ---- lifecycle ---------------------------------------------------------------------------------------- */

static size_t caps_size(const VideoCaps *caps, VideoQueue q) {
        size_t n = sizeof(struct virtio_video_query_capability_resp);

        for (unsigned i = 0; i < caps->n_formats[q]; i++) {
                const VideoFormatDesc *d = &caps->formats[q][i];
                n += sizeof(struct virtio_video_format_desc);
                for (unsigned j = 0; j < d->n_frames; j++)
                        n += sizeof(struct virtio_video_format_frame) +
                             d->frames[j].n_rates * sizeof(struct virtio_video_format_range);
        }
        return n;
}

static void put(uint8_t *buf, size_t *off, const void *p, size_t n) {
        memcpy(buf + *off, p, n);
        *off += n;
}

static struct virtio_video_format_range range_to_wire(const VideoRange *r) {
        return (struct virtio_video_format_range){
                .min = cpu_to_le32(r->min),
                .max = cpu_to_le32(r->max),
                .step = cpu_to_le32(r->step),
        };
}

/* §4.1: 16 + sum(24 + sum(40 + 16 * num_rates)), counts matching the payload exactly. */
static int caps_build(const VideoCaps *caps, VideoQueue q, uint8_t **ret, size_t *ret_len) {
        size_t len = caps_size(caps, q), off = 0;
        _cleanup_free_ uint8_t *buf = calloc(1, len);
        struct virtio_video_query_capability_resp hdr = {
                .hdr.type = cpu_to_le32(VIRTIO_VIDEO_RESP_OK_QUERY_CAPABILITY),
                .num_descs = cpu_to_le32(caps->n_formats[q]),
        };

        if (!buf)
                return -ENOMEM;
        put(buf, &off, &hdr, sizeof(hdr));
        for (unsigned i = 0; i < caps->n_formats[q]; i++) {
                const VideoFormatDesc *d = &caps->formats[q][i];
                struct virtio_video_format_desc wd = {
                        .mask = cpu_to_le64(d->mask),
                        .format = cpu_to_le32(d->format),
                        .planes_layout = cpu_to_le32(d->planes_layout),
                        .plane_align = cpu_to_le32(d->plane_align),
                        .num_frames = cpu_to_le32(d->n_frames),
                };
                put(buf, &off, &wd, sizeof(wd));
                for (unsigned j = 0; j < d->n_frames; j++) {
                        const VideoFrameSize *f = &d->frames[j];
                        struct virtio_video_format_frame wf = {
                                .width = range_to_wire(&f->width),
                                .height = range_to_wire(&f->height),
                                .num_rates = cpu_to_le32(f->n_rates),
                        };
                        put(buf, &off, &wf, sizeof(wf));
                        for (unsigned k = 0; k < f->n_rates; k++) {
                                struct virtio_video_format_range wr = range_to_wire(&f->rates[k]);
                                put(buf, &off, &wr, sizeof(wr));
                        }
                }
        }
        assert(off == len);
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int caps_check(const VideoCaps *caps) {
        for (VideoQueue q = 0; q < _VIDEO_QUEUE_MAX; q++) {
                /* The driver aborts its probe on an empty list (§4.1). */
                if (caps->n_formats[q] < 1 || caps->n_formats[q] > VIDEO_MAX_FORMATS)
                        return -EINVAL;
                for (unsigned i = 0; i < caps->n_formats[q]; i++) {
                        const VideoFormatDesc *d = &caps->formats[q][i];
                        if (d->n_frames > VIDEO_MAX_FRAME_SIZES)
                                return -EINVAL;
                        for (unsigned j = 0; j < d->n_frames; j++)
                                if (d->frames[j].n_rates > VIDEO_MAX_FRAME_RATES)
                                        return -EINVAL;
                }
        }
        return 0;
}

int video_model_new(Backend *backend, const VideoModelOps *ops, void *userdata, VideoModel **ret) {
        VideoModel *m;
        int r;

        assert(backend && ops && ops->complete && ops->drop && ops->translate);
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->backend = backend;
        m->ops = ops;
        m->userdata = userdata;
        m->guest_rl = RATELIMIT_INIT(10 * 1000000ULL, 10);
        m->caps = backend->ops->get_caps(backend);
        r = m->caps ? caps_check(m->caps) : -EINVAL;
        if (r < 0) {
                video_model_free(m);
                return log_error_errno(r,
                                       "Backend '%s' has capabilities that cannot be described to a guest.",
                                       backend->ops->name);
        }
        m->max_caps_length = MODEL_MIN_CAPS_LENGTH;
        for (VideoQueue q = 0; q < _VIDEO_QUEUE_MAX; q++) {
                r = caps_build(m->caps, q, &m->caps_resp[q], &m->caps_resp_len[q]);
                if (r < 0) {
                        video_model_free(m);
                        return r;
                }
                m->max_caps_length = MAX(m->max_caps_length, (uint32_t) m->caps_resp_len[q]);
        }
        *ret = m;
        return 0;
}

void video_model_reset(VideoModel *m) {
        while (m->n_streams > 0)
                stream_free(m->streams[m->n_streams - 1], /* drop= */ true);
        while (m->n_eb > 0) {
                m->ops->drop(m->userdata, m->event_buffers[m->eb_head].token);
                m->eb_head = (m->eb_head + 1) % VIDEO_MODEL_MAX_EVENT_BUFFERS;
                m->n_eb--;
        }
        m->eb_head = 0;
        m->n_ev = m->ev_head = 0;
        m->stats.active_streams = 0;
}

VideoModel *video_model_free(VideoModel *m) {
        if (!m)
                return NULL;
        video_model_reset(m);
        for (VideoQueue q = 0; q < _VIDEO_QUEUE_MAX; q++)
                free(m->caps_resp[q]);
        free(m);
        return NULL;
}

VideoRole video_model_role(VideoModel *m) {
        return m->caps->role;
}

uint32_t video_model_max_caps_length(VideoModel *m) {
        return m->max_caps_length;
}

uint32_t video_model_max_resp_length(VideoModel *m) {
        return MODEL_RESP_LENGTH;
}

void video_model_get_stats(VideoModel *m, VideoDeviceStats *ret) {
        ret->streams_created = m->stats.streams_created;
        ret->active_streams = m->stats.active_streams;
        ret->errors = m->stats.errors;
        ret->bytes_in = m->stats.bytes_in;
        ret->bytes_out = m->stats.bytes_out;
}
