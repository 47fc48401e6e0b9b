/*
 * libmis_glibcxx_shim.so: the one GLIBCXX_3.4.32 (GCC 13) symbol TorchSharp's libLibTorchSharp.so
 * needs, for systems whose libstdc++ stops at GLIBCXX_3.4.30 (Debian 12, GCC 12).
 *
 * GCC 13 no longer puts a static std::ios_base::Init object into every translation unit that
 * includes <iostream>; it emits a reference to std::ios_base_library_init() instead, so that the
 * link pulls in libstdc++'s own stream initialisation. fix-libtorchsharp.sh unversions that
 * reference and adds this library to libLibTorchSharp.so's DT_NEEDED, so it resolves here.
 *
 * The function itself has nothing to do. To keep std::cout/cerr/clog usable from
 * libLibTorchSharp.so regardless of what else is loaded, this library also holds one
 * std::ios_base::Init object for its lifetime -- exactly what GCC <= 12's <iostream> put in every
 * translation unit (constructing it again is a reference-counted no-op).
 */

#define MIS_EXPORT __attribute__((visibility("default")))

/* std::ios_base_library_init() */
MIS_EXPORT void _ZSt21ios_base_library_initv(void);
MIS_EXPORT void _ZSt21ios_base_library_initv(void)
{
}

/* std::ios_base::Init::Init() and ~Init() (GLIBCXX_3.4); Init is an empty class. */
extern void _ZNSt8ios_base4InitC1Ev(void *self);
extern void _ZNSt8ios_base4InitD1Ev(void *self);

static char mis_ios_init;

__attribute__((constructor)) static void mis_shim_init(void)
{
    _ZNSt8ios_base4InitC1Ev(&mis_ios_init);
}

__attribute__((destructor)) static void mis_shim_fini(void)
{
    _ZNSt8ios_base4InitD1Ev(&mis_ios_init);
}
