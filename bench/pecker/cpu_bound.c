// CPU-bound: a long computation with almost no recorded events.
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 300000000;
  unsigned long x = 88172645463325252ul;
  for (long i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  printf("%lu\n", x & 1);
  return 0;
}
