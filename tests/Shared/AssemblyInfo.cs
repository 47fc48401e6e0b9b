// Kernel tests attach host-wide programs and count this process's BPF file descriptors and
// cgroups; running test classes in parallel would let one test see another's. One at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
