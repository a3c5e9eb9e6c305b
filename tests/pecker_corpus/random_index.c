/* Latent heap overflow that depends on randomness: the index comes from
 * getrandom() and rand() seeded by the clock. The plain build does not crash
 * (recorded with --keep); replay gives ASan the same index. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/time.h>

int main(void) {
  struct timeval now;
  gettimeofday(&now, NULL);
  srand((unsigned)now.tv_usec);
  unsigned char noise = 0;
  if (getrandom(&noise, 1, 0) != 1) return 2;
  int index = (rand() ^ noise) % 24;
  int *table = malloc(16 * sizeof(int));
  printf("index %d\n", index);
  table[index] = 1; // BUG
  free(table);
  return 0;
}
