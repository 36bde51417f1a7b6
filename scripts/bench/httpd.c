/* A minimal HTTP/1.1 responder for scripts/bench/side_by_side.sh.
 *
 *   httpd PORT
 *
 * One thread, epoll, non-blocking sockets. Every complete request (headers
 * ending in CRLFCRLF; bodies are not expected) gets "200 OK" with a 2-byte
 * body. Connections stay open (keep-alive) unless the request says
 * "Connection: close", which gets the same answer and a close after it.
 * Pipelined requests are answered in order. Small enough not to be the
 * bottleneck of wrk on the same core: no allocation, no parsing beyond
 * finding the header end and the Connection header. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define BUF 8192

static const char KEEP[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
static const char CLOSE[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
    "Connection: close\r\n\r\nok";

struct conn { int len; char buf[BUF]; };
static struct conn *conns[MAXFD];

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(conns[fd]);
    conns[fd] = NULL;
}

/* Answers every complete request in c; returns 1 to close the connection. */
static int serve(int fd, struct conn *c) {
    char out[BUF];
    int olen = 0, close_after = 0;
    char *start = c->buf;
    char *end;
    c->buf[c->len] = 0;
    while ((end = strstr(start, "\r\n\r\n")) != NULL) {
        *end = 0;
        if (strcasestr(start, "\nconnection: close")) close_after = 1;
        const char *r = close_after ? CLOSE : KEEP;
        int rl = close_after ? (int)sizeof CLOSE - 1 : (int)sizeof KEEP - 1;
        if (olen + rl > (int)sizeof out) break;
        memcpy(out + olen, r, rl);
        olen += rl;
        start = end + 4;
        if (close_after) break;
    }
    c->len -= (int)(start - c->buf);
    memmove(c->buf, start, c->len);
    if (olen > 0 && write(fd, out, olen) != olen) return 1;
    return close_after || c->len >= BUF - 1;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) {
        perror("bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAXFD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[c] = calloc(1, sizeof(struct conn));
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            struct conn *c = conns[fd];
            for (;;) {
                ssize_t r = read(fd, c->buf + c->len, BUF - 1 - c->len);
                if (r > 0) {
                    c->len += (int)r;
                    if (serve(fd, c)) { drop(ep, fd); break; }
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                drop(ep, fd);
                break;
            }
        }
    }
}
