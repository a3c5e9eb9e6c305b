/* Heap overflow driven by a TCP peer: the program connects to a server on
 * loopback, asks for a record, and trusts the 4-byte length the server
 * sends before the payload. A length above the 64-byte buffer overflows the
 * heap when read() fills it. It waits with select, poll and epoll_wait, so
 * triage (with the server gone) needs all their recorded results. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0) {
    perror("connect");
    return 1;
  }
  fd_set writable;
  FD_ZERO(&writable);
  FD_SET(fd, &writable);
  if (select(fd + 1, NULL, &writable, NULL, NULL) != 1) return 3;
  if (send(fd, "GET record\n", 11, 0) != 11) return 4;

  struct pollfd ready = {.fd = fd, .events = POLLIN};
  if (poll(&ready, 1, 5000) != 1 || !(ready.revents & POLLIN)) return 5;
  uint32_t length;
  if (recv(fd, &length, sizeof length, MSG_WAITALL) != sizeof length) return 6;
  length = ntohl(length);

  int epoll = epoll_create1(0);
  struct epoll_event interest = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &interest);
  char *payload = malloc(64);
  uint32_t got = 0;
  while (got < length) {
    struct epoll_event event;
    if (epoll_wait(epoll, &event, 1, 5000) != 1 || event.data.fd != fd) break;
    ssize_t n = read(fd, payload + got, length - got); // BUG
    if (n <= 0) break;
    got += n;
  }
  printf("record of %u bytes: %.8s\n", got, payload);
  free(payload);
  close(epoll);
  close(fd);
  return 0;
}
