/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "vhost/vhost-user-proto.h"
#include "video/virtio-video-proto.h"

#define EVENT_TAG_BASE (1ull << 62)
#define MAX_EVENT_BUFFERS 256

typedef struct VcChunk {
        uint64_t gpa;
        uint32_t len;
} VcChunk;

typedef struct VcResource {
        uint32_t stream_id, queue_type, resource_id;
        unsigned n_planes;
        uint32_t plane_sizes[VC_MAX_PLANES];
        unsigned n_chunks[VC_MAX_PLANES];
        VcChunk *chunks[VC_MAX_PLANES];
} VcResource;

typedef struct VcCmd {
        uint64_t tag;
        uint32_t type, stream_id, queue_type, resource_id;
        uint64_t req_gpa, extra_gpa, resp_gpa;
        size_t resp_cap;
        bool done;
        bool overtaken; /* its reply came before a RESOURCE_QUEUE it should have cancelled (§7.7c) */
        bool orphan; /* a RESOURCE_QUEUE of a stream destroyed before it completed: dropped on completion */
        unsigned purged, purged_err; /* STREAM_DESTROY: the stream's completions it took, those with ERR */
        uint8_t *resp;               /* copy of the reply, resp_cap bytes */
        size_t used_len;
} VcCmd;

struct VideoClient {
        VuFrontend *fe;
        VideoClientOptions opts;
        VcConfig config;
        VcCaps *caps[2]; /* INPUT, OUTPUT */
        bool probed;

        uint64_t next_tag;
        VcCmd **cmds;
        size_t n_cmds;

        VcResource **res;
        size_t n_res;

        VcCompletion *completions;
        size_t n_completions, completions_cap;
        VcEvent *events;
        size_t n_events, events_cap;

        uint64_t *event_gpa;
        unsigned n_event_buffers;
        unsigned bad_events;

        /* Streams destroyed (OK reply) and not created again: their late events are dropped. */
        uint32_t *dead_streams;
        size_t n_dead_streams;
};

void video_client_options_init(VideoClientOptions *o) {
        *o = (VideoClientOptions){ .timeout_ms = 5000, .n_event_buffers = 16 };
}

uint32_t video_client_resp_type(const void *resp, size_t len) {
        struct virtio_video_cmd_hdr h;

        if (!resp || len < sizeof(h))
                return 0;
        memcpy(&h, resp, sizeof(h));
        return le32_to_cpu(h.type);
}

static void mem_free(VideoClient *c, uint64_t *gpa) {
        if (*gpa)
                (void) vu_frontend_mem_free(c->fe, *gpa);
        *gpa = 0;
}

static VcCmd *cmd_free(VideoClient *c, VcCmd *cmd) {
        if (!cmd)
                return NULL;
        mem_free(c, &cmd->req_gpa);
        mem_free(c, &cmd->extra_gpa);
        mem_free(c, &cmd->resp_gpa);
        free(cmd->resp);
        free(cmd);
        return NULL;
}

static VcResource *resource_free(VideoClient *c, VcResource *r) {
        if (!r)
                return NULL;
        for (unsigned p = 0; p < VC_MAX_PLANES; p++) {
                for (unsigned i = 0; i < r->n_chunks[p]; i++)
                        mem_free(c, &r->chunks[p][i].gpa);
                free(r->chunks[p]);
        }
        free(r);
        return NULL;
}

VideoClient *video_client_free(VideoClient *c) {
        if (!c)
                return NULL;
        /* Guest memory may still be read by the device for chains in flight; it is only given back to
         * the allocator here, which is fine as the frontend's memory outlives us. */
        for (size_t i = 0; i < c->n_cmds; i++)
                cmd_free(c, c->cmds[i]);
        free(c->cmds);
        for (size_t i = 0; i < c->n_res; i++)
                resource_free(c, c->res[i]);
        free(c->res);
        for (unsigned i = 0; i < c->n_event_buffers; i++)
                mem_free(c, &c->event_gpa[i]);
        free(c->event_gpa);
        free(c->completions);
        free(c->events);
        free(c->dead_streams);
        free(c->caps[0]);
        free(c->caps[1]);
        free(c);
        return NULL;
}

int video_client_new(VuFrontend *fe, const VideoClientOptions *o, VideoClient **ret) {
        VideoClient *c;

        if (!fe || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fe = fe;
        if (o)
                c->opts = *o;
        else
                video_client_options_init(&c->opts);
        if (c->opts.timeout_ms <= 0)
                c->opts.timeout_ms = 5000;
        if (c->opts.n_event_buffers == 0)
                c->opts.n_event_buffers = 16;
        c->opts.n_event_buffers = MIN(c->opts.n_event_buffers, MAX_EVENT_BUFFERS);
        c->next_tag = 1;
        *ret = c;
        return 0;
}

/* ---- dispatching completions ----------------------------------------------------------------------------
 */

static int push_completion(VideoClient *c, const VcCompletion *v) {
        if (c->n_completions == c->completions_cap) {
                size_t n = MAX(c->completions_cap * 2, (size_t) 16);
                VcCompletion *a = reallocarray(c->completions, n, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                c->completions = a;
                c->completions_cap = n;
        }
        c->completions[c->n_completions++] = *v;
        return 0;
}

static int push_event(VideoClient *c, const VcEvent *v) {
        if (c->n_events == c->events_cap) {
                size_t n = MAX(c->events_cap * 2, (size_t) 16);
                VcEvent *a = reallocarray(c->events, n, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                c->events = a;
                c->events_cap = n;
        }
        c->events[c->n_events++] = *v;
        return 0;
}

static ssize_t cmd_index(VideoClient *c, uint64_t tag) {
        for (size_t i = 0; i < c->n_cmds; i++)
                if (c->cmds[i]->tag == tag)
                        return (ssize_t) i;
        return -1;
}

static void cmd_remove(VideoClient *c, size_t i) {
        cmd_free(c, c->cmds[i]);
        memmove(c->cmds + i, c->cmds + i + 1, (c->n_cmds - i - 1) * sizeof(*c->cmds));
        c->n_cmds--;
}

static bool is_cancelling(uint32_t type) {
        return type == VIRTIO_VIDEO_CMD_QUEUE_CLEAR || type == VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL ||
               type == VIRTIO_VIDEO_CMD_STREAM_DESTROY;
}

/* §7.7c: a successful clear / destroy reply must come after every RESOURCE_QUEUE it cancels. */
static bool queue_still_pending(VideoClient *c, const VcCmd *by) {
        for (size_t i = 0; i < c->n_cmds; i++) {
                const VcCmd *q = c->cmds[i];
                if (q->type != VIRTIO_VIDEO_CMD_RESOURCE_QUEUE || q->done || q->stream_id != by->stream_id)
                        continue;
                if (by->type == VIRTIO_VIDEO_CMD_STREAM_DESTROY || q->queue_type == by->queue_type)
                        return true;
        }
        return false;
}

static ssize_t dead_index(VideoClient *c, uint32_t stream_id) {
        for (size_t i = 0; i < c->n_dead_streams; i++)
                if (c->dead_streams[i] == stream_id)
                        return (ssize_t) i;
        return -1;
}

/* STREAM_DESTROY answered OK: everything of the stream the device produced belongs to the destroy
 * (§7.7c: its queued buffers are completed, cancelled, before the reply), not to whoever asks for
 * completions next, and a later stream may reuse the id. Events and completions travel on different
 * queues without ordering between them, so an event of the stream may still come after the reply: it is
 * dropped until the id is created again. */
static int stream_destroyed(VideoClient *c, VcCmd *destroy) {
        uint32_t id = destroy->stream_id;
        size_t j = 0;

        for (size_t i = 0; i < c->n_completions; i++) {
                const VcCompletion *v = &c->completions[i];
                if (v->stream_id != id) {
                        c->completions[j++] = *v;
                        continue;
                }
                destroy->purged++;
                if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR)
                        destroy->purged_err++;
        }
        c->n_completions = j;
        j = 0;
        for (size_t i = 0; i < c->n_events; i++)
                if (c->events[i].stream_id != id)
                        c->events[j++] = c->events[i];
        c->n_events = j;
        /* Only with a reply that overtook them (-EPROTO for the caller): their completions come later. */
        for (size_t i = 0; i < c->n_cmds; i++)
                if (c->cmds[i]->type == VIRTIO_VIDEO_CMD_RESOURCE_QUEUE && !c->cmds[i]->done &&
                    c->cmds[i]->stream_id == id)
                        c->cmds[i]->orphan = true;
        if (dead_index(c, id) < 0) {
                uint32_t *a = reallocarray(c->dead_streams, c->n_dead_streams + 1, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                c->dead_streams = a;
                c->dead_streams[c->n_dead_streams++] = id;
        }
        return 0;
}

static void stream_created(VideoClient *c, uint32_t stream_id) {
        ssize_t i = dead_index(c, stream_id);

        if (i >= 0)
                c->dead_streams[i] = c->dead_streams[--c->n_dead_streams];
}

static int handle_cmd_used(VideoClient *c, const VuUsed *u) {
        ssize_t i = cmd_index(c, u->tag);
        VcCmd *cmd;
        void *p;

        if (i < 0)
                return -EBADMSG;
        cmd = c->cmds[i];
        if (cmd->done || u->len > cmd->resp_cap)
                return -EBADMSG;
        cmd->used_len = u->len;
        p = vu_frontend_gpa_to_ptr(c->fe, cmd->resp_gpa, cmd->resp_cap);
        if (!p)
                return -EFAULT;
        memcpy(cmd->resp, p, u->len);
        cmd->done = true;

        if (cmd->type == VIRTIO_VIDEO_CMD_RESOURCE_QUEUE) {
                VcCompletion v = {
                        .stream_id = cmd->stream_id,
                        .queue_type = cmd->queue_type,
                        .resource_id = cmd->resource_id,
                        .resp_type = video_client_resp_type(cmd->resp, cmd->used_len),
                };
                int r;

                if (v.resp_type == VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE &&
                    cmd->used_len >= sizeof(struct virtio_video_resource_queue_resp)) {
                        struct virtio_video_resource_queue_resp rr;
                        memcpy(&rr, cmd->resp, sizeof(rr));
                        v.timestamp = le64_to_cpu(rr.timestamp);
                        v.flags = le32_to_cpu(rr.flags);
                        v.size = le32_to_cpu(rr.size);
                }
                r = cmd->orphan ? 0 : push_completion(c, &v);
                cmd_remove(c, (size_t) i);
                return r;
        }
        if (video_client_resp_type(cmd->resp, cmd->used_len) != VIRTIO_VIDEO_RESP_OK_NODATA)
                return 0;
        if (is_cancelling(cmd->type))
                cmd->overtaken = queue_still_pending(c, cmd);
        if (cmd->type == VIRTIO_VIDEO_CMD_STREAM_DESTROY)
                return stream_destroyed(c, cmd);
        if (cmd->type == VIRTIO_VIDEO_CMD_STREAM_CREATE)
                stream_created(c, cmd->stream_id);
        return 0;
}

static int post_event_buffer(VideoClient *c, unsigned i) {
        VuSeg seg = { .gpa = c->event_gpa[i],
                      .len = sizeof(struct virtio_video_event),
                      .device_writable = true };
        void *p = vu_frontend_gpa_to_ptr(c->fe, seg.gpa, seg.len);
        int r;

        if (!p)
                return -EFAULT;
        memset(p, 0, seg.len); /* the driver zeroes the buffer before re-posting it */
        r = vu_frontend_post(c->fe, VIRTIO_VIDEO_QUEUE_EVENT, &seg, 1, 0, EVENT_TAG_BASE + i, NULL);
        if (r < 0)
                return r;
        return vu_frontend_kick(c->fe, VIRTIO_VIDEO_QUEUE_EVENT);
}

static int handle_event_used(VideoClient *c, const VuUsed *u) {
        struct virtio_video_event ev;
        uint64_t i = u->tag - EVENT_TAG_BASE;
        void *p;
        int r;

        if (u->tag < EVENT_TAG_BASE || i >= c->n_event_buffers)
                return -EBADMSG;
        if (u->len < sizeof(ev))
                c->bad_events++;
        else {
                p = vu_frontend_gpa_to_ptr(c->fe, c->event_gpa[i], sizeof(ev));
                if (!p)
                        return -EFAULT;
                memcpy(&ev, p, sizeof(ev));
                /* A late event of a destroyed stream (see stream_destroyed()) is nobody's. */
                if (dead_index(c, le32_to_cpu(ev.stream_id)) < 0) {
                        r = push_event(c, &(VcEvent){ .event_type = le32_to_cpu(ev.event_type),
                                                      .stream_id = le32_to_cpu(ev.stream_id) });
                        if (r < 0)
                                return r;
                }
        }
        return post_event_buffer(c, (unsigned) i);
}

/* Takes everything the device has completed on both queues; returns how many. */
static int client_step(VideoClient *c) {
        int n = 0, r;

        for (unsigned q = 0; q < VIRTIO_VIDEO_NUM_QUEUES; q++) {
                r = vu_frontend_consume_call(c->fe, q);
                if (r < 0)
                        return r;
        }
        /* The eventq first: whatever the device completed on the commandq before it sent an event is
         * then seen no later than the event. Nothing more can be said (a completion seen with or after
         * an event may have been made after it): callers must not depend on an order between the two. */
        for (unsigned k = VIRTIO_VIDEO_NUM_QUEUES; k-- > 0;) {
                unsigned q = k;
                for (;;) {
                        VuUsed u;

                        r = vu_frontend_get_used(c->fe, q, &u);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                break;
                        r = q == VIRTIO_VIDEO_QUEUE_COMMAND ? handle_cmd_used(c, &u)
                                                            : handle_event_used(c, &u);
                        if (r < 0)
                                return r;
                        n++;
                }
        }
        return n;
}

/* Returns > 0 when completions arrived while arming (so do not sleep), 0 when armed, < 0 on error. */
static int arm_used_event(VideoClient *c) {
        if (!(vu_frontend_features(c->fe) & (1ull << VIRTIO_RING_F_EVENT_IDX)))
                return 0;
        for (unsigned q = 0; q < VIRTIO_VIDEO_NUM_QUEUES; q++) {
                VuRingView v;
                uint16_t idx;
                int r;

                r = vu_frontend_ring_view(c->fe, q, &v);
                if (r < 0)
                        return r;
                idx = le16toh(__atomic_load_n(v.used_idx, __ATOMIC_ACQUIRE));
                r = vu_frontend_set_used_event(c->fe, q, idx);
                if (r < 0)
                        return r;
        }
        return client_step(c);
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Processes completions until cond() holds; polls the call eventfds (and the pump) meanwhile. */
static int client_wait(VideoClient *c, bool (*cond)(VideoClient *c, const void *arg), const void *arg) {
        uint64_t deadline = now_ms() + (uint64_t) c->opts.timeout_ms;

        for (;;) {
                struct pollfd pfd[3];
                uint64_t now;
                int r, t;

                r = client_step(c);
                if (r < 0)
                        return r;
                if (cond(c, arg))
                        return 0;
                /* Checked before pumping too: a device loop that always has work must not keep us here. */
                now = now_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                if (c->opts.pump) {
                        r = c->opts.pump(c->opts.pump_userdata);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                continue;
                }
                /* With EVENT_IDX the device signals only past used_event: ask for the next completion,
                 * then look again for one that came in between. */
                r = arm_used_event(c);
                if (r != 0) {
                        if (r < 0)
                                return r;
                        continue;
                }
                /* Sleep until a call (or the deadline): notifications are armed, nothing is polled. */
                t = c->opts.pump ? 1 : (int) MIN(deadline - now, (uint64_t) INT32_MAX);
                pfd[0] = (struct pollfd){ .fd = vu_frontend_call_fd(c->fe, 0), .events = POLLIN };
                pfd[1] = (struct pollfd){ .fd = vu_frontend_call_fd(c->fe, 1), .events = POLLIN };
                /* No events: only a hangup of the backend wakes us here. */
                pfd[2] = (struct pollfd){ .fd = vu_frontend_socket_fd(c->fe), .events = 0 };
                r = poll(pfd, pfd[2].fd >= 0 ? 3 : 2, t);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0 && pfd[2].fd >= 0 && (pfd[2].revents & (POLLHUP | POLLERR))) {
                        /* Take what was completed before the hangup, then report it. */
                        r = client_step(c);
                        if (r < 0)
                                return r;
                        if (cond(c, arg))
                                return 0;
                        return -ECONNRESET;
                }
        }
}

int video_client_poll(VideoClient *c) {
        int r = client_step(c);
        return r < 0 ? r : 0;
}

unsigned video_client_bad_events(VideoClient *c) {
        return c->bad_events;
}

/* ---- commands --------------------------------------------------------------------------------------------
 */

static int alloc_copy(VideoClient *c, const void *data, size_t len, uint64_t *ret_gpa) {
        uint64_t gpa;
        void *p;
        int r;

        r = vu_frontend_mem_alloc(c->fe, len, 16, &gpa);
        if (r < 0)
                return r;
        if (data) {
                p = vu_frontend_gpa_to_ptr(c->fe, gpa, len);
                if (!p) {
                        (void) vu_frontend_mem_free(c->fe, gpa);
                        return -EFAULT;
                }
                memcpy(p, data, len);
        }
        *ret_gpa = gpa;
        return 0;
}

int video_client_send(VideoClient *c,
                      const void *req,
                      size_t req_len,
                      const void *extra,
                      size_t extra_len,
                      size_t resp_cap,
                      uint64_t *ret_tag) {
        struct virtio_video_cmd_hdr h = {};
        VuSeg segs[3];
        unsigned n = 0;
        VcCmd *cmd, **a;
        int r;

        if (!req || req_len == 0 || req_len > UINT32_MAX || extra_len > UINT32_MAX || resp_cap == 0 ||
            resp_cap > UINT32_MAX)
                return -EINVAL;
        cmd = calloc(1, sizeof(*cmd));
        if (!cmd)
                return -ENOMEM;
        cmd->resp = calloc(1, resp_cap);
        if (!cmd->resp) {
                free(cmd);
                return -ENOMEM;
        }
        cmd->resp_cap = resp_cap;
        memcpy(&h, req, MIN(req_len, sizeof(h)));
        cmd->type = le32_to_cpu(h.type);
        cmd->stream_id = le32_to_cpu(h.stream_id);
        /* The queue type sits at offset 8 of every command that has one. */
        if (req_len >= 12 && cmd->type != VIRTIO_VIDEO_CMD_STREAM_CREATE &&
            cmd->type != VIRTIO_VIDEO_CMD_QUERY_CONTROL && cmd->type != VIRTIO_VIDEO_CMD_GET_CONTROL &&
            cmd->type != VIRTIO_VIDEO_CMD_SET_CONTROL) {
                le32 v;
                memcpy(&v, (const uint8_t *) req + 8, sizeof(v));
                cmd->queue_type = le32_to_cpu(v);
        }
        if (cmd->type == VIRTIO_VIDEO_CMD_RESOURCE_QUEUE && req_len >= 16) {
                le32 v;
                memcpy(&v, (const uint8_t *) req + 12, sizeof(v));
                cmd->resource_id = le32_to_cpu(v);
        }

        r = alloc_copy(c, req, req_len, &cmd->req_gpa);
        if (r >= 0 && extra && extra_len > 0)
                r = alloc_copy(c, extra, extra_len, &cmd->extra_gpa);
        if (r >= 0)
                r = alloc_copy(c, NULL, resp_cap, &cmd->resp_gpa);
        if (r < 0) {
                cmd_free(c, cmd);
                return r;
        }
        segs[n++] = (VuSeg){ .gpa = cmd->req_gpa, .len = (uint32_t) req_len };
        if (cmd->extra_gpa)
                segs[n++] = (VuSeg){ .gpa = cmd->extra_gpa, .len = (uint32_t) extra_len };
        segs[n++] = (VuSeg){ .gpa = cmd->resp_gpa, .len = (uint32_t) resp_cap, .device_writable = true };

        a = reallocarray(c->cmds, c->n_cmds + 1, sizeof(*a));
        if (!a) {
                cmd_free(c, cmd);
                return -ENOMEM;
        }
        c->cmds = a;
        cmd->tag = c->next_tag++;
        r = vu_frontend_post(c->fe, VIRTIO_VIDEO_QUEUE_COMMAND, segs, n, 0, cmd->tag, NULL);
        if (r < 0) {
                cmd_free(c, cmd);
                return r;
        }
        c->cmds[c->n_cmds++] = cmd;
        if (ret_tag)
                *ret_tag = cmd->tag;
        return vu_frontend_kick(c->fe, VIRTIO_VIDEO_QUEUE_COMMAND);
}

static bool cond_cmd_done(VideoClient *c, const void *arg) {
        ssize_t i = cmd_index(c, *(const uint64_t *) arg);
        return i < 0 || c->cmds[i]->done;
}

static int wait_reply_full(VideoClient *c,
                           uint64_t tag,
                           void *resp,
                           size_t resp_cap,
                           size_t *ret_len,
                           unsigned *ret_purged,
                           unsigned *ret_purged_err) {
        ssize_t i;
        bool overtaken;
        int r;

        if (cmd_index(c, tag) < 0)
                return -ENOENT;
        r = client_wait(c, cond_cmd_done, &tag);
        if (r < 0)
                return r;
        i = cmd_index(c, tag);
        if (i < 0)
                return -ENOENT;
        if (resp) {
                memset(resp, 0, resp_cap);
                memcpy(resp, c->cmds[i]->resp, MIN(resp_cap, c->cmds[i]->used_len));
        }
        if (ret_len)
                *ret_len = c->cmds[i]->used_len;
        if (ret_purged)
                *ret_purged = c->cmds[i]->purged;
        if (ret_purged_err)
                *ret_purged_err = c->cmds[i]->purged_err;
        overtaken = c->cmds[i]->overtaken;
        cmd_remove(c, (size_t) i);
        return overtaken ? -EPROTO : 0;
}

int video_client_reply_type(VideoClient *c, uint64_t tag, uint32_t *ret_type) {
        ssize_t i = cmd_index(c, tag);

        if (i < 0 || c->cmds[i]->type == VIRTIO_VIDEO_CMD_RESOURCE_QUEUE)
                return -ENOENT; /* a RESOURCE_QUEUE's reply is a completion */
        if (!c->cmds[i]->done)
                return 0;
        if (ret_type)
                *ret_type = video_client_resp_type(c->cmds[i]->resp, c->cmds[i]->used_len);
        return 1;
}

int video_client_wait_reply(VideoClient *c, uint64_t tag, void *resp, size_t resp_cap, size_t *ret_len) {
        return wait_reply_full(c, tag, resp, resp_cap, ret_len, NULL, NULL);
}

int video_client_command(VideoClient *c,
                         const void *req,
                         size_t req_len,
                         const void *extra,
                         size_t extra_len,
                         void *resp,
                         size_t resp_cap,
                         size_t *ret_len) {
        uint64_t tag;
        int r;

        r = video_client_send(c, req, req_len, extra, extra_len, resp_cap, &tag);
        if (r < 0)
                return r;
        return video_client_wait_reply(c, tag, resp, resp_cap, ret_len);
}

/* A command whose success is an 8-byte OK_NODATA. */
static int
simple_command(VideoClient *c, const void *req, size_t req_len, const void *extra, size_t extra_len) {
        uint8_t resp[sizeof(struct virtio_video_cmd_hdr)];
        size_t len;
        uint32_t t;
        int r;

        r = video_client_command(c, req, req_len, extra, extra_len, resp, sizeof(resp), &len);
        if (r < 0)
                return r;
        if (len < sizeof(struct virtio_video_cmd_hdr))
                return -EBADMSG;
        t = video_client_resp_type(resp, len);
        return t == VIRTIO_VIDEO_RESP_OK_NODATA ? 0 : (int) t;
}

static struct virtio_video_cmd_hdr hdr(uint32_t type, uint32_t stream_id) {
        return (struct virtio_video_cmd_hdr){ cpu_to_le32(type), cpu_to_le32(stream_id) };
}

/* ---- probe ----------------------------------------------------------------------------------------------
 */

static int read_config(VideoClient *c) {
        struct virtio_video_config cfg = {};
        int r;

        r = vu_frontend_get_config(c->fe, 0, &cfg, sizeof(cfg));
        if (r >= 0)
                c->config.size = sizeof(cfg);
        else {
                /* SPEC-v3 devices have the 12-byte layout. */
                r = vu_frontend_get_config(c->fe, 0, &cfg, 12);
                if (r < 0)
                        return r;
                c->config.size = 12;
        }
        c->config.version = le32_to_cpu(cfg.version);
        c->config.max_caps_length = le32_to_cpu(cfg.max_caps_length);
        c->config.max_resp_length = le32_to_cpu(cfg.max_resp_length);
        memcpy(c->config.device_name, cfg.device_name, sizeof(cfg.device_name));
        c->config.device_name[32] = '\0';
        /* The driver's probe fails on zero limits (§1.3); we also refuse absurd ones. */
        if (c->config.max_caps_length < sizeof(struct virtio_video_query_capability_resp) ||
            c->config.max_caps_length > VC_MAX_CAPS_LENGTH || c->config.max_resp_length < 16 ||
            c->config.max_resp_length > VC_MAX_CAPS_LENGTH)
                return -EBADMSG;
        return 0;
}

static int post_event_buffers(VideoClient *c) {
        int r;

        c->event_gpa = calloc(c->opts.n_event_buffers, sizeof(uint64_t));
        if (!c->event_gpa)
                return -ENOMEM;
        for (unsigned i = 0; i < c->opts.n_event_buffers; i++) {
                r = vu_frontend_mem_alloc(c->fe, sizeof(struct virtio_video_event), 8, &c->event_gpa[i]);
                if (r < 0)
                        return r;
                c->n_event_buffers++;
                r = post_event_buffer(c, i);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Bounded reader over a reply. */
typedef struct Cursor {
        const uint8_t *p;
        size_t len, off;
} Cursor;

static int cursor_take(Cursor *cur, void *dst, size_t n) {
        if (n > cur->len - cur->off)
                return -EBADMSG;
        memcpy(dst, cur->p + cur->off, n);
        cur->off += n;
        return 0;
}

static VcRange range_from_wire(const struct virtio_video_format_range *r) {
        return (VcRange){ le32_to_cpu(r->min), le32_to_cpu(r->max), le32_to_cpu(r->step) };
}

static int parse_frame(Cursor *cur, VcFrameSize *f) {
        struct virtio_video_format_frame wf;
        uint32_t n;
        int r;

        r = cursor_take(cur, &wf, sizeof(wf));
        if (r < 0)
                return r;
        f->width = range_from_wire(&wf.width);
        f->height = range_from_wire(&wf.height);
        n = le32_to_cpu(wf.num_rates);
        if (n > (cur->len - cur->off) / sizeof(struct virtio_video_format_range))
                return -EBADMSG;
        f->n_rates = 0;
        for (uint32_t k = 0; k < n; k++) {
                struct virtio_video_format_range wr;
                r = cursor_take(cur, &wr, sizeof(wr));
                if (r < 0)
                        return r;
                if (f->n_rates < VC_MAX_RATES)
                        f->rates[f->n_rates++] = range_from_wire(&wr);
        }
        return 0;
}

/* §4.1: counts must match the payload exactly; nothing is read beyond what the device wrote. */
static int parse_caps(const uint8_t *buf, size_t len, VcCaps *caps) {
        struct virtio_video_query_capability_resp h;
        Cursor cur = { .p = buf, .len = len };
        uint32_t n;
        int r;

        r = cursor_take(&cur, &h, sizeof(h));
        if (r < 0)
                return r;
        n = le32_to_cpu(h.num_descs);
        if (n == 0 || n > VC_MAX_FORMATS)
                return -EBADMSG;
        caps->n_formats = 0;
        for (uint32_t i = 0; i < n; i++) {
                struct virtio_video_format_desc d;
                VcFormat *f = &caps->formats[caps->n_formats++];
                uint32_t nf;

                r = cursor_take(&cur, &d, sizeof(d));
                if (r < 0)
                        return r;
                *f = (VcFormat){
                        .format = le32_to_cpu(d.format),
                        .mask = le64_to_cpu(d.mask),
                        .planes_layout = le32_to_cpu(d.planes_layout),
                        .plane_align = le32_to_cpu(d.plane_align),
                };
                nf = le32_to_cpu(d.num_frames);
                if (nf > (cur.len - cur.off) / sizeof(struct virtio_video_format_frame))
                        return -EBADMSG;
                for (uint32_t k = 0; k < nf; k++) {
                        VcFrameSize tmp, *fs = f->n_frames < VC_MAX_FRAMES ? &f->frames[f->n_frames] : &tmp;
                        r = parse_frame(&cur, fs);
                        if (r < 0)
                                return r;
                        if (fs != &tmp)
                                f->n_frames++;
                }
        }
        return cur.off == cur.len ? 0 : -EBADMSG;
}

int video_client_parse_capability(const void *buf, size_t len, VcCaps *ret) {
        if (!buf || !ret)
                return -EINVAL;
        return parse_caps(buf, len, ret);
}

static int query_capability(VideoClient *c, uint32_t queue_type, VcCaps **ret) {
        struct virtio_video_query_capability q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_QUERY_CAPABILITY, 0),
                .queue_type = cpu_to_le32(queue_type),
        };
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ VcCaps *caps = NULL;
        size_t len;
        uint32_t t;
        int r;

        buf = malloc(c->config.max_caps_length);
        caps = calloc(1, sizeof(*caps));
        if (!buf || !caps)
                return -ENOMEM;
        r = video_client_command(c, &q, sizeof(q), NULL, 0, buf, c->config.max_caps_length, &len);
        if (r < 0)
                return r;
        t = video_client_resp_type(buf, len);
        if (t != VIRTIO_VIDEO_RESP_OK_QUERY_CAPABILITY)
                return t == 0 ? -EBADMSG : (int) t;
        r = parse_caps(buf, len, caps);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(caps);
        return 0;
}

int video_client_probe(VideoClient *c) {
        int r;

        if (c->probed)
                return -EBUSY;
        r = read_config(c);
        if (r < 0)
                return r;
        r = post_event_buffers(c);
        if (r < 0)
                return r;
        r = query_capability(c, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, &c->caps[0]);
        if (r != 0)
                return r;
        r = query_capability(c, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, &c->caps[1]);
        if (r != 0)
                return r;
        c->probed = true;
        return 0;
}

const VcConfig *video_client_get_config(VideoClient *c) {
        return &c->config;
}

const VcCaps *video_client_get_caps(VideoClient *c, uint32_t queue_type) {
        if (queue_type == VIRTIO_VIDEO_QUEUE_TYPE_INPUT)
                return c->caps[0];
        if (queue_type == VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT)
                return c->caps[1];
        return NULL;
}

bool video_client_is_encoder(VideoClient *c) {
        return c->caps[0] && c->caps[0]->n_formats > 0 && c->caps[0]->formats[0].format < 0x1000;
}

/* ---- streams and params
 * ----------------------------------------------------------------------------------- */

int video_client_stream_create_full(VideoClient *c,
                                    uint32_t stream_id,
                                    uint32_t in_mem_type,
                                    uint32_t out_mem_type,
                                    uint32_t coded_format,
                                    const char *tag) {
        struct virtio_video_stream_create q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_STREAM_CREATE, stream_id),
                .in_mem_type = cpu_to_le32(in_mem_type),
                .out_mem_type = cpu_to_le32(out_mem_type),
                .coded_format = cpu_to_le32(coded_format),
        };

        if (tag)
                strncpy((char *) q.tag, tag, sizeof(q.tag) - 1);
        return simple_command(c, &q, sizeof(q), NULL, 0);
}

int video_client_stream_create(VideoClient *c, uint32_t stream_id, uint32_t coded_format, const char *tag) {
        return video_client_stream_create_full(c, stream_id, VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES,
                                               VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES, coded_format, tag);
}

static void forget_resources(VideoClient *c, uint32_t stream_id, bool all_queues, uint32_t queue_type) {
        size_t j = 0;

        for (size_t i = 0; i < c->n_res; i++) {
                VcResource *r = c->res[i];
                if (r->stream_id == stream_id && (all_queues || r->queue_type == queue_type))
                        resource_free(c, r);
                else
                        c->res[j++] = r;
        }
        c->n_res = j;
}

int video_client_stream_destroy_full(VideoClient *c,
                                     uint32_t stream_id,
                                     unsigned *ret_completions,
                                     unsigned *ret_cancelled) {
        struct virtio_video_stream_destroy q = { .hdr = hdr(VIRTIO_VIDEO_CMD_STREAM_DESTROY, stream_id) };
        uint8_t resp[sizeof(struct virtio_video_cmd_hdr)];
        unsigned purged = 0, purged_err = 0;
        uint64_t tag;
        size_t len;
        uint32_t t;
        int r;

        r = video_client_send(c, &q, sizeof(q), NULL, 0, sizeof(resp), &tag);
        if (r < 0)
                return r;
        r = wait_reply_full(c, tag, resp, sizeof(resp), &len, &purged, &purged_err);
        if (ret_completions)
                *ret_completions = purged;
        if (ret_cancelled)
                *ret_cancelled = purged_err;
        if (r < 0)
                return r;
        if (len < sizeof(struct virtio_video_cmd_hdr))
                return -EBADMSG;
        t = video_client_resp_type(resp, len);
        if (t != VIRTIO_VIDEO_RESP_OK_NODATA)
                return (int) t;
        forget_resources(c, stream_id, true, 0);
        return 0;
}

int video_client_stream_destroy(VideoClient *c, uint32_t stream_id) {
        return video_client_stream_destroy_full(c, stream_id, NULL, NULL);
}

int video_client_stream_drain(VideoClient *c, uint32_t stream_id, uint64_t *ret_tag) {
        struct virtio_video_stream_drain q = { .hdr = hdr(VIRTIO_VIDEO_CMD_STREAM_DRAIN, stream_id) };

        return video_client_send(c, &q, sizeof(q), NULL, 0, sizeof(struct virtio_video_cmd_hdr), ret_tag);
}

static void params_from_wire(const struct virtio_video_params *w, VcParams *p) {
        p->queue_type = le32_to_cpu(w->queue_type);
        p->format = le32_to_cpu(w->format);
        p->frame_width = le32_to_cpu(w->frame_width);
        p->frame_height = le32_to_cpu(w->frame_height);
        p->min_buffers = le32_to_cpu(w->min_buffers);
        p->max_buffers = le32_to_cpu(w->max_buffers);
        p->crop.left = le32_to_cpu(w->crop.left);
        p->crop.top = le32_to_cpu(w->crop.top);
        p->crop.width = le32_to_cpu(w->crop.width);
        p->crop.height = le32_to_cpu(w->crop.height);
        p->frame_rate = le32_to_cpu(w->frame_rate);
        p->num_planes = le32_to_cpu(w->num_planes);
        for (unsigned i = 0; i < VC_MAX_PLANES; i++) {
                p->planes[i].plane_size = le32_to_cpu(w->plane_formats[i].plane_size);
                p->planes[i].stride = le32_to_cpu(w->plane_formats[i].stride);
        }
}

static void params_to_wire(const VcParams *p, struct virtio_video_params *w) {
        w->queue_type = cpu_to_le32(p->queue_type);
        w->format = cpu_to_le32(p->format);
        w->frame_width = cpu_to_le32(p->frame_width);
        w->frame_height = cpu_to_le32(p->frame_height);
        w->min_buffers = cpu_to_le32(p->min_buffers);
        w->max_buffers = cpu_to_le32(p->max_buffers);
        w->crop.left = cpu_to_le32(p->crop.left);
        w->crop.top = cpu_to_le32(p->crop.top);
        w->crop.width = cpu_to_le32(p->crop.width);
        w->crop.height = cpu_to_le32(p->crop.height);
        w->frame_rate = cpu_to_le32(p->frame_rate);
        w->num_planes = cpu_to_le32(p->num_planes);
        for (unsigned i = 0; i < VC_MAX_PLANES; i++) {
                w->plane_formats[i].plane_size = cpu_to_le32(p->planes[i].plane_size);
                w->plane_formats[i].stride = cpu_to_le32(p->planes[i].stride);
        }
}

int video_client_get_params(
        VideoClient *c, uint32_t stream_id, uint32_t queue_type, bool ext, VcParams *ret) {
        struct virtio_video_get_params q = {
                .hdr = hdr(ext ? VIRTIO_VIDEO_CMD_GET_PARAMS_EXT : VIRTIO_VIDEO_CMD_GET_PARAMS, stream_id),
                .queue_type = cpu_to_le32(queue_type),
        };
        struct virtio_video_get_params_ext_resp resp;
        size_t want = ext ? sizeof(struct virtio_video_get_params_ext_resp)
                          : sizeof(struct virtio_video_get_params_resp);
        VcParams p = {};
        size_t len;
        uint32_t t;
        int r;

        r = video_client_command(c, &q, sizeof(q), NULL, 0, &resp, want, &len);
        if (r < 0)
                return r;
        t = video_client_resp_type(&resp, len);
        if (t != VIRTIO_VIDEO_RESP_OK_GET_PARAMS)
                return t == 0 ? -EBADMSG : (int) t;
        if (len != want)
                return -EBADMSG;
        params_from_wire(&resp.params.base, &p);
        if (ext)
                p.resource_type = le32_to_cpu(resp.params.resource_type);
        /* The driver files the reply under the echoed queue (ambiguity 10.20); a wrong echo is a bug. */
        if (p.queue_type != queue_type || p.num_planes > VC_MAX_PLANES)
                return -EBADMSG;
        *ret = p;
        return 0;
}

int video_client_set_params(VideoClient *c, uint32_t stream_id, bool ext, const VcParams *p) {
        struct virtio_video_set_params_ext q = {
                .hdr = hdr(ext ? VIRTIO_VIDEO_CMD_SET_PARAMS_EXT : VIRTIO_VIDEO_CMD_SET_PARAMS, stream_id),
        };

        params_to_wire(p, &q.params.base);
        q.params.resource_type = cpu_to_le32(p->resource_type);
        return simple_command(c, &q,
                              ext ? sizeof(struct virtio_video_set_params_ext)
                                  : sizeof(struct virtio_video_set_params),
                              NULL, 0);
}

/* ---- resources -------------------------------------------------------------------------------------------
 */

static VcResource *find_resource(VideoClient *c, uint32_t stream_id, uint32_t queue_type, uint32_t id) {
        for (size_t i = 0; i < c->n_res; i++)
                if (c->res[i]->stream_id == stream_id && c->res[i]->queue_type == queue_type &&
                    c->res[i]->resource_id == id)
                        return c->res[i];
        return NULL;
}

/* Splits a plane into n chunks; a 64-byte gap between chunks keeps them apart in guest memory. */
static int alloc_plane(VideoClient *c, VcResource *res, unsigned p, uint32_t size, unsigned n) {
        uint32_t base = size / n, rest = size % n;
        uint64_t gap = 0;
        int r;

        res->chunks[p] = calloc(n, sizeof(VcChunk));
        if (!res->chunks[p])
                return -ENOMEM;
        for (unsigned i = 0; i < n; i++) {
                uint32_t len = base + (i < rest ? 1 : 0);
                r = vu_frontend_mem_alloc(c->fe, MAX(len, 1u), 64, &res->chunks[p][i].gpa);
                if (r < 0)
                        goto fail_gap;
                res->chunks[p][i].len = len;
                res->n_chunks[p]++;
                if (n > 1 && !gap) {
                        r = vu_frontend_mem_alloc(c->fe, 64, 64, &gap);
                        if (r < 0)
                                goto fail_gap;
                }
        }
        r = 0;
fail_gap:
        mem_free(c, &gap);
        return r;
}

int video_client_resource_create(VideoClient *c,
                                 uint32_t stream_id,
                                 uint32_t queue_type,
                                 uint32_t resource_id,
                                 unsigned n_planes,
                                 const uint32_t *plane_sizes,
                                 unsigned entries_per_plane) {
        struct virtio_video_resource_create q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_CREATE, stream_id),
                .queue_type = cpu_to_le32(queue_type),
                .resource_id = cpu_to_le32(resource_id),
                .planes_layout = cpu_to_le32(VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER),
                .num_planes = cpu_to_le32(n_planes),
        };
        _cleanup_free_ struct virtio_video_mem_entry *entries = NULL;
        VcResource *res, **a;
        unsigned n = 0;
        int r;

        if (n_planes == 0 || n_planes > VC_MAX_PLANES || !plane_sizes || entries_per_plane == 0 ||
            entries_per_plane > VC_MAX_ENTRIES_PER_PLANE)
                return -EINVAL;
        for (unsigned p = 0; p < n_planes; p++)
                if (plane_sizes[p] < entries_per_plane)
                        return -EINVAL;
        res = calloc(1, sizeof(*res));
        entries = calloc(n_planes * entries_per_plane, sizeof(*entries));
        if (!res || !entries) {
                free(res);
                return -ENOMEM;
        }
        *res = (VcResource){ .stream_id = stream_id,
                             .queue_type = queue_type,
                             .resource_id = resource_id,
                             .n_planes = n_planes };
        for (unsigned p = 0; p < n_planes; p++) {
                res->plane_sizes[p] = plane_sizes[p];
                r = alloc_plane(c, res, p, plane_sizes[p], entries_per_plane);
                if (r < 0) {
                        resource_free(c, res);
                        return r;
                }
                q.num_entries[p] = cpu_to_le32(entries_per_plane);
                for (unsigned i = 0; i < res->n_chunks[p]; i++)
                        entries[n++] = (struct virtio_video_mem_entry){
                                .addr = cpu_to_le64(res->chunks[p][i].gpa),
                                .length = cpu_to_le32(res->chunks[p][i].len),
                        };
        }
        r = simple_command(c, &q, sizeof(q), entries, n * sizeof(*entries));
        if (r != 0) {
                resource_free(c, res);
                return r;
        }
        /* A re-created id (after DESTROY_ALL) replaces our record of the old one. */
        for (size_t i = 0; i < c->n_res; i++)
                if (c->res[i]->stream_id == stream_id && c->res[i]->queue_type == queue_type &&
                    c->res[i]->resource_id == resource_id) {
                        resource_free(c, c->res[i]);
                        c->res[i] = res;
                        return 0;
                }
        a = reallocarray(c->res, c->n_res + 1, sizeof(*a));
        if (!a) {
                resource_free(c, res);
                return -ENOMEM;
        }
        c->res = a;
        c->res[c->n_res++] = res;
        return 0;
}

static int resource_copy(VideoClient *c,
                         uint32_t stream_id,
                         uint32_t queue_type,
                         uint32_t resource_id,
                         unsigned plane,
                         size_t offset,
                         void *data,
                         size_t len,
                         bool write) {
        VcResource *res = find_resource(c, stream_id, queue_type, resource_id);
        size_t pos = 0;

        if (!res)
                return -ENOENT;
        if (plane >= res->n_planes || offset > res->plane_sizes[plane] ||
            len > res->plane_sizes[plane] - offset)
                return -EINVAL;
        for (unsigned i = 0; i < res->n_chunks[plane] && len > 0; i++) {
                VcChunk *ch = &res->chunks[plane][i];
                size_t skip, n;
                uint8_t *p;

                if (offset >= pos + ch->len) {
                        pos += ch->len;
                        continue;
                }
                skip = offset > pos ? offset - pos : 0;
                n = MIN(len, ch->len - skip);
                p = vu_frontend_gpa_to_ptr(c->fe, ch->gpa + skip, n);
                if (!p)
                        return -EFAULT;
                if (write)
                        memcpy(p, data, n);
                else
                        memcpy(data, p, n);
                data = (uint8_t *) data + n;
                len -= n;
                offset += n;
                pos += ch->len;
        }
        return 0;
}

int video_client_resource_write(VideoClient *c,
                                uint32_t stream_id,
                                uint32_t queue_type,
                                uint32_t resource_id,
                                unsigned plane,
                                size_t offset,
                                const void *data,
                                size_t len) {
        return resource_copy(c, stream_id, queue_type, resource_id, plane, offset, (void *) data, len, true);
}

int video_client_resource_read(VideoClient *c,
                               uint32_t stream_id,
                               uint32_t queue_type,
                               uint32_t resource_id,
                               unsigned plane,
                               size_t offset,
                               void *data,
                               size_t len) {
        return resource_copy(c, stream_id, queue_type, resource_id, plane, offset, data, len, false);
}

const uint8_t *video_client_resource_peek(VideoClient *c,
                                          uint32_t stream_id,
                                          uint32_t queue_type,
                                          uint32_t resource_id,
                                          unsigned plane,
                                          size_t offset,
                                          size_t len) {
        VcResource *res = find_resource(c, stream_id, queue_type, resource_id);
        size_t pos = 0;

        if (!res || plane >= res->n_planes || offset > res->plane_sizes[plane] ||
            len > res->plane_sizes[plane] - offset)
                return NULL;
        for (unsigned i = 0; i < res->n_chunks[plane]; i++) {
                const VcChunk *ch = &res->chunks[plane][i];

                if (offset < pos + ch->len) {
                        size_t skip = offset - pos;
                        if (len > ch->len - skip)
                                return NULL; /* spans chunks */
                        return vu_frontend_gpa_to_ptr(c->fe, ch->gpa + skip, MAX(len, (size_t) 1));
                }
                pos += ch->len;
        }
        return NULL;
}

int video_client_resource_queue(VideoClient *c,
                                uint32_t stream_id,
                                uint32_t queue_type,
                                uint32_t resource_id,
                                uint64_t timestamp,
                                unsigned n_data_sizes,
                                const uint32_t *data_sizes) {
        struct virtio_video_resource_queue q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_QUEUE, stream_id),
                .queue_type = cpu_to_le32(queue_type),
                .resource_id = cpu_to_le32(resource_id),
                .timestamp = cpu_to_le64(timestamp),
                .num_data_sizes = cpu_to_le32(n_data_sizes),
        };

        /* More than 8 sizes cannot be expressed; the count itself may still be sent (negative tests). */
        for (unsigned i = 0; i < MIN(n_data_sizes, (unsigned) VC_MAX_PLANES) && data_sizes; i++)
                q.data_sizes[i] = cpu_to_le32(data_sizes[i]);
        return video_client_send(c, &q, sizeof(q), NULL, 0, sizeof(struct virtio_video_resource_queue_resp),
                                 NULL);
}

unsigned video_client_queued(VideoClient *c, uint32_t stream_id, uint32_t queue_type) {
        unsigned n = 0;

        for (size_t i = 0; i < c->n_cmds; i++)
                if (c->cmds[i]->type == VIRTIO_VIDEO_CMD_RESOURCE_QUEUE && !c->cmds[i]->done &&
                    c->cmds[i]->stream_id == stream_id && c->cmds[i]->queue_type == queue_type)
                        n++;
        return n;
}

int video_client_resource_destroy_all(VideoClient *c, uint32_t stream_id, uint32_t queue_type) {
        struct virtio_video_resource_destroy_all q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL, stream_id),
                .queue_type = cpu_to_le32(queue_type),
        };
        int r;

        r = simple_command(c, &q, sizeof(q), NULL, 0);
        if (r == 0)
                forget_resources(c, stream_id, false, queue_type);
        return r;
}

int video_client_queue_clear(VideoClient *c, uint32_t stream_id, uint32_t queue_type) {
        struct virtio_video_queue_clear q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_QUEUE_CLEAR, stream_id),
                .queue_type = cpu_to_le32(queue_type),
        };

        return simple_command(c, &q, sizeof(q), NULL, 0);
}

/* ---- controls --------------------------------------------------------------------------------------------
 */

int video_client_query_control(
        VideoClient *c, uint32_t control, uint32_t format, uint32_t *values, unsigned max, unsigned *ret_n) {
        struct virtio_video_query_control q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_QUERY_CONTROL, 0),
                .control = cpu_to_le32(control),
                .format = cpu_to_le32(format),
        };
        struct virtio_video_query_control_resp h;
        size_t cap = c->config.max_resp_length ?: 4096, len;
        _cleanup_free_ uint8_t *buf = NULL;
        uint32_t t, n;
        int r;

        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        r = video_client_command(c, &q, sizeof(q), NULL, 0, buf, cap, &len);
        if (r < 0)
                return r;
        t = video_client_resp_type(buf, len);
        if (t != VIRTIO_VIDEO_RESP_OK_QUERY_CONTROL)
                return t == 0 ? -EBADMSG : (int) t;
        if (len < sizeof(h))
                return -EBADMSG;
        memcpy(&h, buf, sizeof(h));
        n = le32_to_cpu(h.num);
        if (n > (len - sizeof(h)) / sizeof(le32) || len != sizeof(h) + (size_t) n * sizeof(le32))
                return -EBADMSG;
        for (uint32_t i = 0; i < n && i < max && values; i++) {
                le32 v;
                memcpy(&v, buf + sizeof(h) + i * sizeof(v), sizeof(v));
                values[i] = le32_to_cpu(v);
        }
        if (ret_n)
                *ret_n = n;
        return 0;
}

int video_client_get_control(VideoClient *c, uint32_t stream_id, uint32_t control, uint32_t *ret_value) {
        struct virtio_video_get_control q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_GET_CONTROL, stream_id),
                .control = cpu_to_le32(control),
        };
        struct virtio_video_get_control_resp resp;
        size_t len;
        uint32_t t;
        int r;

        r = video_client_command(c, &q, sizeof(q), NULL, 0, &resp, sizeof(resp), &len);
        if (r < 0)
                return r;
        t = video_client_resp_type(&resp, len);
        if (t != VIRTIO_VIDEO_RESP_OK_GET_CONTROL)
                return t == 0 ? -EBADMSG : (int) t;
        if (len != sizeof(resp))
                return -EBADMSG;
        if (ret_value)
                *ret_value = le32_to_cpu(resp.value);
        return 0;
}

int video_client_set_control(VideoClient *c, uint32_t stream_id, uint32_t control, uint32_t value) {
        struct virtio_video_set_control q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_SET_CONTROL, stream_id),
                .control = cpu_to_le32(control),
                .value = cpu_to_le32(value),
        };

        return simple_command(c, &q,
                              control == VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME
                                      ? VIRTIO_VIDEO_SET_CONTROL_NOVALUE_SIZE
                                      : sizeof(q),
                              NULL, 0);
}

/* ---- completions and events ------------------------------------------------------------------------------
 */

static bool cond_completion(VideoClient *c, const void *arg) {
        return c->n_completions > 0;
}

static bool cond_event(VideoClient *c, const void *arg) {
        return c->n_events > 0;
}

static bool cond_any(VideoClient *c, const void *arg) {
        return c->n_events > 0 || c->n_completions > 0;
}

int video_client_pop_completion(VideoClient *c, VcCompletion *ret) {
        if (c->n_completions == 0)
                return 0;
        *ret = c->completions[0];
        memmove(c->completions, c->completions + 1, (c->n_completions - 1) * sizeof(*c->completions));
        c->n_completions--;
        return 1;
}

int video_client_pop_event(VideoClient *c, VcEvent *ret) {
        if (c->n_events == 0)
                return 0;
        *ret = c->events[0];
        memmove(c->events, c->events + 1, (c->n_events - 1) * sizeof(*c->events));
        c->n_events--;
        return 1;
}

int video_client_next_completion(VideoClient *c, VcCompletion *ret, bool wait) {
        int r;

        r = wait ? client_wait(c, cond_completion, NULL) : client_step(c);
        if (r < 0)
                return r;
        return video_client_pop_completion(c, ret);
}

int video_client_next_event(VideoClient *c, VcEvent *ret, bool wait) {
        int r;

        r = wait ? client_wait(c, cond_event, NULL) : client_step(c);
        if (r < 0)
                return r;
        return video_client_pop_event(c, ret);
}

int video_client_wait_any(VideoClient *c) {
        return client_wait(c, cond_any, NULL);
}
