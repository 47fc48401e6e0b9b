/*
 * weaken_verneed: inspect, or mark weak, one GNU version-need entry of an ELF64 little-endian file.
 *
 *   weaken_verneed FILE VERSION
 *       Sets VER_FLG_WEAK in vna_flags of every Vernaux entry of .gnu.version_r named VERSION,
 *       writing only those two-byte fields back. Prints "weakened N", "already-weak" or "absent".
 *
 *   weaken_verneed --status FILE VERSION [NEEDED]
 *       Changes nothing. Prints "<absent|weak|strong> <refs> <yes|no|->":
 *         absent/weak/strong  whether FILE needs VERSION, and if so whether every such need is weak;
 *         refs                how many .gnu.version (versym) entries still bind a symbol to VERSION;
 *         yes/no/-            whether NEEDED is a DT_NEEDED entry ("-" when NEEDED is not given).
 *
 * Exit status: 0 on success, 2 on bad usage, I/O error or a malformed/unsupported ELF file.
 * Used by fix-libtorchsharp.sh; every offset read from the file is bounds-checked before use.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weaken_verneed reads ELF fields natively and supports little-endian hosts only"
#endif

#define MAX_MATCHES 16

static const char *g_path = "";

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "weaken_verneed: %s: ", g_path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

typedef struct {
    const unsigned char *data;
    size_t size;
} blob;

/* The bytes [off, off + len) of b, or NULL when that range is not wholly inside b. */
static const unsigned char *slice(blob b, uint64_t off, uint64_t len)
{
    if (off > b.size || len > b.size - off)
        return NULL;
    return b.data + off;
}

/* A section's contents as a blob, failing on ranges outside the file. */
static blob section_blob(blob file, const Elf64_Shdr *sh, const char *what)
{
    if (sh->sh_type == SHT_NOBITS)
        die("%s section has no file contents", what);
    const unsigned char *p = slice(file, sh->sh_offset, sh->sh_size);
    if (p == NULL)
        die("%s section [%#llx, +%#llx) lies outside the file", what,
            (unsigned long long)sh->sh_offset, (unsigned long long)sh->sh_size);
    return (blob){ p, (size_t)sh->sh_size };
}

/* The NUL-terminated string at off in strtab, or NULL when it is out of range or unterminated. */
static const char *string_at(blob strtab, uint64_t off)
{
    if (off >= strtab.size)
        return NULL;
    const char *s = (const char *)strtab.data + off;
    return memchr(s, '\0', strtab.size - off) != NULL ? s : NULL;
}

typedef struct {
    blob file;
    const Elf64_Shdr *shdrs; /* copied into aligned memory */
    uint64_t shnum;
} elf;

static Elf64_Shdr *load_section_headers(blob file, uint64_t *shnum_out)
{
    Elf64_Ehdr eh;
    if (file.size < sizeof eh)
        die("too small to be an ELF file");
    memcpy(&eh, file.data, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        die("not an ELF file");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64)
        die("not a 64-bit ELF file");
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
        die("not a little-endian ELF file");
    if (eh.e_shoff == 0)
        die("has no section headers");
    if (eh.e_shentsize != sizeof(Elf64_Shdr))
        die("unexpected section header size %u", (unsigned)eh.e_shentsize);

    uint64_t shnum = eh.e_shnum;
    if (shnum == 0) { /* extended numbering: the real count is in section 0's sh_size */
        const unsigned char *p0 = slice(file, eh.e_shoff, sizeof(Elf64_Shdr));
        if (p0 == NULL)
            die("section header 0 lies outside the file");
        Elf64_Shdr sh0;
        memcpy(&sh0, p0, sizeof sh0);
        shnum = sh0.sh_size;
    }
    if (eh.e_shoff > file.size || shnum == 0 || shnum > (file.size - eh.e_shoff) / sizeof(Elf64_Shdr))
        die("section header table (%llu entries at %#llx) lies outside the file",
            (unsigned long long)shnum, (unsigned long long)eh.e_shoff);

    Elf64_Shdr *shdrs = calloc((size_t)shnum, sizeof *shdrs);
    if (shdrs == NULL)
        die("out of memory");
    memcpy(shdrs, file.data + eh.e_shoff, (size_t)shnum * sizeof *shdrs);
    *shnum_out = shnum;
    return shdrs;
}

static const Elf64_Shdr *find_section(const elf *e, uint32_t type)
{
    for (uint64_t i = 0; i < e->shnum; i++)
        if (e->shdrs[i].sh_type == type)
            return &e->shdrs[i];
    return NULL;
}

static blob linked_strtab(const elf *e, const Elf64_Shdr *sh, const char *what)
{
    if (sh->sh_link == 0 || sh->sh_link >= e->shnum)
        die("%s section links to invalid string table %u", what, (unsigned)sh->sh_link);
    const Elf64_Shdr *strsh = &e->shdrs[sh->sh_link];
    if (strsh->sh_type != SHT_STRTAB)
        die("%s section links to section %u, which is not a string table", what, (unsigned)sh->sh_link);
    return section_blob(e->file, strsh, "string table");
}

typedef struct {
    size_t count;
    uint64_t flags_offset[MAX_MATCHES]; /* file offsets of the vna_flags fields */
    uint16_t flags[MAX_MATCHES];
    uint16_t index[MAX_MATCHES]; /* vna_other: the version index symbols use in .gnu.version */
} matches;

/* Every Vernaux named version in .gnu.version_r. */
static matches find_verneed(const elf *e, const char *version)
{
    matches m = { 0 };
    const Elf64_Shdr *sh = find_section(e, SHT_GNU_verneed);
    if (sh == NULL)
        return m;
    blob sec = section_blob(e->file, sh, ".gnu.version_r");
    blob strtab = linked_strtab(e, sh, ".gnu.version_r");
    uint64_t sec_file_off = sh->sh_offset;

    /* Offsets only move forward (vn_next/vna_next are unsigned and non-zero to continue, and each
     * step is bounds-checked), so these loops terminate; sh_info caps the entry count as well. */
    uint64_t off = 0;
    for (uint64_t n = 0; sh->sh_info == 0 || n < sh->sh_info; n++) {
        const unsigned char *p = slice(sec, off, sizeof(Elf64_Verneed));
        if (p == NULL)
            die("Verneed entry at +%#llx lies outside .gnu.version_r", (unsigned long long)off);
        Elf64_Verneed vn;
        memcpy(&vn, p, sizeof vn);
        if (vn.vn_version != VER_NEED_CURRENT)
            die("unsupported Verneed version %u", (unsigned)vn.vn_version);

        uint64_t aux = off + vn.vn_aux;
        for (uint64_t j = 0; j < vn.vn_cnt; j++) {
            const unsigned char *q = slice(sec, aux, sizeof(Elf64_Vernaux));
            if (q == NULL)
                die("Vernaux entry at +%#llx lies outside .gnu.version_r", (unsigned long long)aux);
            Elf64_Vernaux va;
            memcpy(&va, q, sizeof va);
            const char *name = string_at(strtab, va.vna_name);
            if (name == NULL)
                die("Vernaux entry at +%#llx has an invalid name offset", (unsigned long long)aux);
            if (strcmp(name, version) == 0) {
                if (m.count == MAX_MATCHES)
                    die("more than %d needs of version %s", MAX_MATCHES, version);
                m.flags_offset[m.count] = sec_file_off + aux + offsetof(Elf64_Vernaux, vna_flags);
                m.flags[m.count] = va.vna_flags;
                m.index[m.count] = va.vna_other;
                m.count++;
            }
            if (va.vna_next == 0)
                break;
            if (va.vna_next > sec.size - aux) /* aux < sec.size here, so no underflow */
                die("Vernaux chain leaves .gnu.version_r");
            aux += va.vna_next;
        }
        if (vn.vn_next == 0)
            break;
        if (vn.vn_next > sec.size - off)
            die("Verneed chain leaves .gnu.version_r");
        off += vn.vn_next;
    }
    return m;
}

/* How many .gnu.version entries bind a symbol to one of the matched version indexes. */
static uint64_t count_versym_refs(const elf *e, const matches *m)
{
    const Elf64_Shdr *sh = find_section(e, SHT_GNU_versym);
    if (sh == NULL || m->count == 0)
        return 0;
    blob sec = section_blob(e->file, sh, ".gnu.version");
    uint64_t refs = 0;
    for (size_t off = 0; off + sizeof(Elf64_Half) <= sec.size; off += sizeof(Elf64_Half)) {
        Elf64_Half v;
        memcpy(&v, sec.data + off, sizeof v);
        v &= 0x7fff; /* drop the "hidden" bit */
        for (size_t k = 0; k < m->count; k++)
            if (v == m->index[k] && v > VER_NDX_GLOBAL)
                refs++;
    }
    return refs;
}

static int has_needed(const elf *e, const char *needed)
{
    const Elf64_Shdr *sh = find_section(e, SHT_DYNAMIC);
    if (sh == NULL)
        die("has no dynamic section");
    blob sec = section_blob(e->file, sh, ".dynamic");
    blob strtab = linked_strtab(e, sh, ".dynamic");
    for (size_t off = 0; off + sizeof(Elf64_Dyn) <= sec.size; off += sizeof(Elf64_Dyn)) {
        Elf64_Dyn d;
        memcpy(&d, sec.data + off, sizeof d);
        if (d.d_tag == DT_NULL)
            break;
        if (d.d_tag != DT_NEEDED)
            continue;
        const char *name = string_at(strtab, d.d_un.d_val);
        if (name == NULL)
            die("DT_NEEDED entry has an invalid name offset");
        if (strcmp(name, needed) == 0)
            return 1;
    }
    return 0;
}

static unsigned char *read_all(int fd, size_t *size_out)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("fstat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        die("not a regular file");
    if (st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX / 2)
        die("unexpected file size %lld", (long long)st.st_size);
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size);
    if (buf == NULL)
        die("out of memory");
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read: %s", r < 0 ? strerror(errno) : "file shrank while reading");
        got += (size_t)r;
    }
    *size_out = size;
    return buf;
}

static int usage(void)
{
    fputs("usage: weaken_verneed FILE VERSION\n"
          "       weaken_verneed --status FILE VERSION [NEEDED]\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    int status_only = argc > 1 && strcmp(argv[1], "--status") == 0;
    int first = status_only ? 2 : 1;
    int nargs = argc - first;
    if (nargs < 2 || nargs > (status_only ? 3 : 2))
        return usage();
    g_path = argv[first];
    const char *version = argv[first + 1];
    const char *needed = status_only && nargs == 3 ? argv[first + 2] : NULL;
    if (version[0] == '\0' || (needed != NULL && needed[0] == '\0'))
        return usage();

    int fd = open(g_path, status_only ? O_RDONLY : O_RDWR);
    if (fd < 0)
        die("open: %s", strerror(errno));
    size_t size;
    unsigned char *data = read_all(fd, &size);
    elf e = { .file = { data, size } };
    e.shdrs = load_section_headers(e.file, &e.shnum);
    matches m = find_verneed(&e, version);

    if (status_only) {
        const char *state = "absent";
        if (m.count > 0) {
            state = "weak";
            for (size_t k = 0; k < m.count; k++)
                if (!(m.flags[k] & VER_FLG_WEAK))
                    state = "strong";
        }
        printf("%s %llu %s\n", state, (unsigned long long)count_versym_refs(&e, &m),
               needed == NULL ? "-" : has_needed(&e, needed) ? "yes" : "no");
        close(fd);
        return 0;
    }

    size_t changed = 0;
    for (size_t k = 0; k < m.count; k++) {
        if (m.flags[k] & VER_FLG_WEAK)
            continue;
        uint16_t flags = (uint16_t)(m.flags[k] | VER_FLG_WEAK);
        if (pwrite(fd, &flags, sizeof flags, (off_t)m.flags_offset[k]) != (ssize_t)sizeof flags)
            die("write: %s", strerror(errno));
        changed++;
    }
    if (close(fd) != 0)
        die("close: %s", strerror(errno));
    if (m.count == 0)
        puts("absent");
    else if (changed == 0)
        puts("already-weak");
    else
        printf("weakened %zu\n", changed);
    return 0;
}
