/* Use of an uninitialized value that depends on stdin: only the bytes read()
 * returned are initialised; a short input leaves the flag undefined. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
  char *bytes = malloc(8);
  ssize_t got = read(0, bytes, 8);
  if (got < 1) return 2;
  if (bytes[4] == 'x') { // BUG
    puts("flag set");
  }
  free(bytes);
  return 0;
}
