/* Watching operations through PostgreSQL LISTEN/NOTIFY.
 *
 * The listener thread owns a connection of its own that LISTENs on saasodoo_operations (a
 * trigger notifies the operation id on every insert and update). For each notified id with
 * subscribers it reads the operation through the pool and delivers it. After a reconnect it
 * re-reads every watched operation, so notifications lost while disconnected do no harm.
 * Each subscriber gets versions in order (by update time) and is finished once done. */
#include "ops/watch.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/records.h"
#include "util/log.h"

typedef struct sub {
    uint64_t id;
    char op_id[37];
    op_sink sink;
    int64_t last_us;
    struct sub *next;
} sub;

struct op_watch {
    store *st;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    sub *subs;
    uint64_t next_id;
    bool closed;
};

static int64_t op_update_us(const Saasodoo__V1__Operation *op)
{
    if (!op->update_time)
        return 0;
    return op->update_time->seconds * 1000000 + op->update_time->nanos / 1000;
}

/* Unlinks sub s; call with the lock held. */
static void unlink_sub(op_watch *w, sub *s)
{
    for (sub **pp = &w->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

/* Sends op to s if newer; returns true when s is done with and must be freed (already
 * unlinked). Lock held. */
static bool deliver(op_watch *w, sub *s, const Saasodoo__V1__Operation *op)
{
    int64_t us = op_update_us(op);
    if (us > s->last_us || op->done) {
        if (us > s->last_us && s->sink.send(s->sink.arg, op) < 0) {
            unlink_sub(w, s);
            return true;
        }
        s->last_us = us;
    }
    if (op->done) {
        s->sink.finish(s->sink.arg, 0, NULL);
        unlink_sub(w, s);
        return true;
    }
    return false;
}

static void free_sub(sub *s)
{
    s->sink.release(s->sink.arg);
    free(s);
}

/* Reads op_id and delivers it to every subscriber of it. */
static void refresh(op_watch *w, const char *op_id)
{
    Saasodoo__V1__Operation *op = NULL;
    sdo_error err;
    PGconn *c = store_acquire(w->st, &err);
    if (!c)
        return;
    int rc = store_op_get(w->st, c, op_id, false, &op, &err);
    store_release(w->st, c);
    if (rc < 0)
        return;
    sub *done = NULL;
    pthread_mutex_lock(&w->mu);
    for (sub *s = w->subs, *next; s; s = next) {
        next = s->next;
        if (strcmp(s->op_id, op_id) == 0 && deliver(w, s, op)) {
            s->next = done;
            done = s;
        }
    }
    pthread_mutex_unlock(&w->mu);
    while (done) {
        sub *next = done->next;
        free_sub(done);
        done = next;
    }
    protobuf_c_message_free_unpacked(&op->base, NULL);
}

static void refresh_all(op_watch *w)
{
    /* copy the distinct ids first: refresh takes the lock itself */
    char(*ids)[37] = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&w->mu);
    for (sub *s = w->subs; s; s = s->next) {
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(ids[i], s->op_id) == 0;
        if (seen)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            void *p = realloc(ids, cap * sizeof *ids);
            if (!p)
                break;
            ids = p;
        }
        memcpy(ids[n++], s->op_id, 37);
    }
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++)
        refresh(w, ids[i]);
    free(ids);
}

static bool watched(op_watch *w, const char *op_id)
{
    pthread_mutex_lock(&w->mu);
    bool found = false;
    for (sub *s = w->subs; s && !found; s = s->next)
        found = strcmp(s->op_id, op_id) == 0;
    pthread_mutex_unlock(&w->mu);
    return found;
}

static void *listener_main(void *arg)
{
    op_watch *w = arg;
    PGconn *conn = NULL;
    while (!atomic_load(&w->stop)) {
        if (!conn) {
            conn = store_connect(w->st, NULL);
            PGresult *r = conn ? PQexec(conn, "LISTEN saasodoo_operations") : NULL;
            if (!conn || PQresultStatus(r) != PGRES_COMMAND_OK) {
                PQclear(r);
                if (conn)
                    PQfinish(conn);
                conn = NULL;
                for (int i = 0; i < 10 && !atomic_load(&w->stop); i++)
                    usleep(100 * 1000);
                continue;
            }
            PQclear(r);
            refresh_all(w);
        }
        struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
        int pr = poll(&pfd, 1, 200);
        if (pr < 0)
            continue;
        if (!PQconsumeInput(conn)) {
            log_warn("msg=\"operation listener lost its connection; reconnecting\"");
            PQfinish(conn);
            conn = NULL;
            continue;
        }
        char ids[64][37];
        int n = 0;
        PGnotify *nt;
        while ((nt = PQnotifies(conn)) != NULL) {
            bool dup = false;
            for (int i = 0; i < n && !dup; i++)
                dup = strcmp(ids[i], nt->extra) == 0;
            if (!dup && n < 64 && strlen(nt->extra) == 36)
                memcpy(ids[n++], nt->extra, 37);
            PQfreemem(nt);
        }
        for (int i = 0; i < n; i++)
            if (watched(w, ids[i]))
                refresh(w, ids[i]);
    }
    if (conn)
        PQfinish(conn);
    return NULL;
}

op_watch *op_watch_start(store *st)
{
    op_watch *w = sdo_calloc(1, sizeof *w);
    w->st = st;
    w->next_id = 1;
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->mu, NULL);
    pthread_create(&w->thread, NULL, listener_main, w);
    return w;
}

void op_watch_close(op_watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->closed = true;
    sub *list = w->subs;
    w->subs = NULL;
    pthread_mutex_unlock(&w->mu);
    while (list) {
        sub *next = list->next;
        list->sink.finish(list->sink.arg, 14 /* UNAVAILABLE */,
                          "the server is shutting down; watch the operation again");
        free_sub(list);
        list = next;
    }
}

void op_watch_stop(op_watch *w)
{
    if (!w)
        return;
    op_watch_close(w);
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

uint64_t op_watch_next_id(op_watch *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t id = w->next_id++;
    pthread_mutex_unlock(&w->mu);
    return id;
}

int op_watch_subscribe(op_watch *w, uint64_t sub_id, const char *op_id, const op_sink *sink,
                       sdo_error *err)
{
    sub *s = sdo_calloc(1, sizeof *s);
    s->id = sub_id;
    sdo_strlcpy(s->op_id, op_id, sizeof s->op_id);
    s->sink = *sink;
    s->last_us = -1;

    /* Subscribe before reading, so no change between the read and the subscription is lost. */
    pthread_mutex_lock(&w->mu);
    if (w->closed) {
        pthread_mutex_unlock(&w->mu);
        free(s);
        return sdo_fail(err, SDO_UNAVAILABLE, "the server is shutting down");
    }
    s->next = w->subs;
    w->subs = s;
    pthread_mutex_unlock(&w->mu);

    Saasodoo__V1__Operation *op = NULL;
    PGconn *c = store_acquire(w->st, err);
    int rc = c ? store_op_get(w->st, c, op_id, false, &op, err) : -(int)err->code;
    if (c)
        store_release(w->st, c);

    pthread_mutex_lock(&w->mu);
    bool present = false;
    for (sub *p = w->subs; p && !present; p = p->next)
        present = p == s;
    bool drop = false;
    if (rc < 0) {
        if (present)
            unlink_sub(w, s);
    } else if (present) {
        drop = deliver(w, s, op);
    }
    pthread_mutex_unlock(&w->mu);
    if (op)
        protobuf_c_message_free_unpacked(&op->base, NULL);
    if (rc < 0) {
        if (present)
            free(s); /* the caller keeps its sink */
        else
            return 0; /* finished and released meanwhile (shutdown) */
        return rc;
    }
    if (drop)
        free_sub(s);
    return 0;
}

void op_watch_unsubscribe(op_watch *w, uint64_t sub_id)
{
    sub *found = NULL;
    pthread_mutex_lock(&w->mu);
    for (sub *s = w->subs; s; s = s->next) {
        if (s->id == sub_id) {
            found = s;
            unlink_sub(w, s);
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (found)
        free_sub(found);
}
