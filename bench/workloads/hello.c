/* The small C file the compile workload of `mis bench --workloads` builds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long checksum(const char *text)
{
	unsigned long sum = 5381;
	for (size_t i = 0; i < strlen(text); i++)
		sum = sum * 33 + (unsigned char)text[i];
	return sum;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		printf("%s %lu\n", argv[i], checksum(argv[i]));
	return argc > 1 ? EXIT_SUCCESS : EXIT_FAILURE;
}
