/*
 * abi_probe [i386] — makes syscalls through the other ABIs a 64-bit process can reach:
 * an x32 getpid (syscall number | __X32_SYSCALL_BIT), printed as "x32 r=R errno=E", and with an
 * argument an i386 getpid through int 0x80 (which the MIS filter must kill, as its syscall
 * numbers mean something else entirely), printed as "i386 r=R" should it survive.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    (void)argv;
    errno = 0;
    long r = syscall(0x40000000L | SYS_getpid);
    printf("x32 r=%ld errno=%d\n", r, errno);
    fflush(stdout);
    if (argc > 1) {
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L /* i386 getpid */) : "memory");
        printf("i386 r=%ld\n", ret);
    }
    return 0;
}
