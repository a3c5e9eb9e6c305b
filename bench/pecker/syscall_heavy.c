// Syscall-heavy: many small reads and clock calls (each one a recorded event).
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  int fd = open("/dev/zero", O_RDONLY);
  char buf[16];
  unsigned long sum = 0;
  struct timespec ts;
  for (long i = 0; i < n; i++) {
    if (read(fd, buf, sizeof buf) != sizeof buf) return 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sum += (unsigned long)buf[0] + (unsigned long)ts.tv_nsec;
  }
  close(fd);
  printf("%lu\n", sum & 1);
  return 0;
}
