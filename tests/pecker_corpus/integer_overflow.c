/* Latent signed integer overflow from stdin: wraps silently in the plain
 * build (recorded with --keep); UBSan on replay reports it. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  char line[64];
  if (fgets(line, sizeof line, stdin) == NULL) return 2;
  int count = atoi(line);
  int total = count * 1000; // BUG
  printf("total %d\n", total);
  return 0;
}
