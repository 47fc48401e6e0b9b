using System.Text;

namespace Mis.Enforcer.Policy;

/// <summary>
/// A policy's glob rules compiled for the kernel (<c>struct mis_glob_word</c> in
/// bpf/include/mis_shared.h): position automata over the path's UTF-8 bytes, packed into 64-bit
/// words, that <c>bpf/include/mis_path_match.h</c> runs in one pass per word. <see cref="Match"/>
/// runs the same automata here, so tests hold both the kernel and this compiler to
/// <see cref="PathGlob"/>'s own meaning of each pattern.
/// </summary>
/// <remarks>
/// A position is "the pattern is matched up to here". Per pattern element (see PathGlob):
/// a literal character is one position per UTF-8 byte; <c>*</c> one position looping on every
/// byte but '/'; <c>**</c> one looping on every byte; <c>**/</c> ("any number of whole segments")
/// an entry position that either skips the group (eps3) or enters a <c>**</c> followed by a '/';
/// <c>?</c> and a negated class one character: a lead position and a continuation position looping
/// on UTF-8 continuation bytes; a final <c>/**</c> makes the rule a tree rule (it matches the
/// directory and, at a '/', everything below).
/// </remarks>
internal sealed class PathAutomaton
{
    /// <summary>MIS_GLOB_WORDS: words of positions a policy may use.</summary>
    internal const int MaxWords = 16;

    /// <summary>MIS_GLOB_CLOSURE_STEPS.</summary>
    internal const int ClosureSteps = 4;

    /// <summary>MIS_GLOB_NO_RULE: the rule of a position that is not final. Rules are numbered 0..254.</summary>
    internal const byte NoRule = 255;

    /// <summary>MIS_PATH_MAX: longest path (with its NUL) the kernel matches.</summary>
    internal const int PathMax = 256;

    private PathAutomaton(IReadOnlyList<Word> words) => Words = words;

    /// <summary>The compiled words, in the order the kernel scans them.</summary>
    internal IReadOnlyList<Word> Words { get; }

    /// <summary>One word of positions (the C struct's fields).</summary>
    internal sealed class Word
    {
        internal readonly ulong[] Adv = new ulong[256];
        internal readonly ulong[] Loop = new ulong[256];
        internal ulong Start, Eps1, Eps3, Final, Tree;
        internal readonly byte[] Rule = Enumerable.Repeat(NoRule, 64).ToArray();
        internal int Used;
    }

    /// <summary>One position of one pattern, before packing.</summary>
    private sealed class Position
    {
        internal readonly bool[] Adv = new bool[256];
        internal readonly bool[] Loop = new bool[256];
        internal bool Eps1, Eps3;
    }

    /// <summary>
    /// Compiles <paramref name="globs"/> (each with its file rule's index, below <see cref="NoRule"/>).
    /// Concrete patterns need no automaton (the kernel matches them as exact paths) but compile too.
    /// </summary>
    /// <exception cref="NotSupportedException">A pattern the kernel matcher cannot hold (the message says which and why).</exception>
    internal static PathAutomaton Compile(IEnumerable<(int Rule, PathGlob Glob)> globs)
    {
        var words = new List<Word>();
        foreach (var (rule, glob) in globs)
        {
            if (rule is < 0 or >= NoRule)
                throw new NotSupportedException($"the kernel matcher numbers at most {NoRule} file rules; rule {rule + 1} ({glob.Pattern}) is past that");
            var (positions, tree) = Positions(glob.Pattern);
            if (LongestEpsilonChain(positions) > ClosureSteps)
                throw new NotSupportedException($"the pattern \"{glob.Pattern}\" has more than {ClosureSteps} wildcards in a row; the kernel matcher follows at most {ClosureSteps}");
            int length = positions.Count + 1; // + the final position
            if (length > 64)
                throw new NotSupportedException($"the pattern \"{glob.Pattern}\" needs {length} positions; the kernel matcher holds 64 per pattern");
            var word = words.LastOrDefault();
            if (word is null || word.Used + length > 64)
            {
                if (words.Count == MaxWords)
                    throw new NotSupportedException($"the policy's glob rules need more than {MaxWords * 64} positions (the kernel matcher's room); at \"{glob.Pattern}\"");
                words.Add(word = new Word());
            }
            Place(word, positions, tree, (byte)rule);
        }
        return new PathAutomaton(words);
    }

    private static void Place(Word word, List<Position> positions, bool tree, byte rule)
    {
        int first = word.Used;
        for (int i = 0; i < positions.Count; i++)
        {
            ulong bit = 1UL << (first + i);
            var p = positions[i];
            for (int c = 0; c < 256; c++)
            {
                if (p.Adv[c])
                    word.Adv[c] |= bit;
                if (p.Loop[c])
                    word.Loop[c] |= bit;
            }
            if (p.Eps1)
                word.Eps1 |= bit;
            if (p.Eps3)
                word.Eps3 |= bit;
        }
        int final = first + positions.Count;
        word.Final |= 1UL << final;
        if (tree)
            word.Tree |= 1UL << final;
        word.Rule[final] = rule;
        word.Start |= 1UL << first;
        word.Start = Close(word, word.Start);
        word.Used = final + 1;
    }

    /// <summary>The positions of <paramref name="pattern"/> (as PathGlob reads it) and whether it ends in "/**".</summary>
    private static (List<Position> Positions, bool Tree) Positions(string pattern)
    {
        var list = new List<Position>();
        for (int i = 0; i < pattern.Length; i++)
        {
            char ch = pattern[i];
            if (ch == '/' && pattern.AsSpan(i) is "/**")
                return (list, true);
            if (ch == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                bool slashAfter = i + 2 < pattern.Length && pattern[i + 2] == '/';
                if (slashAfter)
                {
                    // (?:.*/)? : an entry that skips the group, or ** then '/'.
                    list.Add(new Position { Eps1 = true, Eps3 = true });
                    list.Add(AnyRun(slash: true));
                    list.Add(Literal((byte)'/'));
                }
                else
                {
                    list.Add(AnyRun(slash: true));
                }
                i += slashAfter ? 2 : 1;
                continue;
            }
            switch (ch)
            {
                case '*':
                    list.Add(AnyRun(slash: false));
                    break;
                case '?':
                    OneCharacter(list, b => b != '/');
                    break;
                case '[':
                    int close = pattern.IndexOf(']', i + 1);
                    if (close < 0)
                        throw new NotSupportedException($"unclosed '[' in \"{pattern}\"");
                    Class(list, pattern[(i + 1)..close], pattern);
                    i = close;
                    break;
                default:
                    int units = char.IsHighSurrogate(ch) && i + 1 < pattern.Length ? 2 : 1;
                    foreach (byte b in Encoding.UTF8.GetBytes(pattern.Substring(i, units)))
                        list.Add(Literal(b));
                    i += units - 1;
                    break;
            }
        }
        return (list, false);
    }

    private static Position Literal(byte b)
    {
        var p = new Position();
        p.Adv[b] = true;
        return p;
    }

    /// <summary><c>[^/]*</c> (slash false) or <c>.*</c> (slash true): loops, and may be left at once.</summary>
    private static Position AnyRun(bool slash)
    {
        var p = new Position { Eps1 = true };
        for (int c = 0; c < 256; c++)
            p.Loop[c] = slash || c != '/';
        return p;
    }

    /// <summary>
    /// One character whose first byte passes <paramref name="lead"/>: a lead byte, then any
    /// UTF-8 continuation bytes (0x80-0xBF) that follow it. An ASCII character is one byte.
    /// </summary>
    private static void OneCharacter(List<Position> list, Func<int, bool> lead)
    {
        // A continuation byte never starts a character: a position active in the middle of one
        // (after a * that stopped there) must not take it for a character of its own.
        var first = new Position();
        for (int c = 0; c < 256; c++)
            first.Adv[c] = c is < 0x80 or > 0xBF && lead(c);
        var continuation = new Position { Eps1 = true };
        for (int c = 0x80; c <= 0xBF; c++)
            continuation.Loop[c] = true;
        list.Add(first);
        list.Add(continuation);
    }

    /// <summary>A character class as PathGlob writes it into its regex: [set] or [!set], ranges a-z; ASCII members only.</summary>
    private static void Class(List<Position> list, string set, string pattern)
    {
        bool negated = set.StartsWith('!');
        if (negated)
            set = set[1..];
        var members = new bool[128];
        for (int i = 0; i < set.Length; i++)
        {
            char c = set[i];
            if (c > 127 || (i + 2 < set.Length && set[i + 1] == '-' && set[i + 2] > 127))
                throw new NotSupportedException($"the class [{set}] in \"{pattern}\" has a non-ASCII member; the kernel matcher's classes are ASCII");
            if (i + 2 < set.Length && set[i + 1] == '-')
            {
                if (set[i + 2] < c)
                    throw new NotSupportedException($"the range {c}-{set[i + 2]} in \"{pattern}\" is reversed");
                for (int m = c; m <= set[i + 2]; m++)
                    members[m] = true;
                i += 2;
            }
            else
            {
                members[c] = true;
            }
        }
        if (negated)
        {
            OneCharacter(list, b => b >= 128 || !members[b]);
            return;
        }
        var p = new Position();
        for (int c = 0; c < 128; c++)
            p.Adv[c] = members[c];
        list.Add(p);
    }

    /// <summary>The most positions one can pass in a row without reading (what the closure's steps must cover).</summary>
    private static int LongestEpsilonChain(List<Position> positions)
    {
        var chain = new int[positions.Count + 4];
        for (int i = positions.Count - 1; i >= 0; i--)
            chain[i] = Math.Max(positions[i].Eps1 ? 1 + chain[i + 1] : 0, positions[i].Eps3 ? 1 + chain[i + 3] : 0);
        return positions.Count == 0 ? 0 : chain.Max();
    }

    private static ulong Close(Word t, ulong s)
    {
        for (int k = 0; k < ClosureSteps; k++)
            s |= ((s & t.Eps1) << 1) | ((s & t.Eps3) << 3);
        return s;
    }

    /// <summary>The rules whose pattern matches <paramref name="path"/>, computed exactly as the kernel does (mis_glob_scan).</summary>
    internal IReadOnlySet<int> Match(string path)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(path);
        var rules = new SortedSet<int>();
        foreach (var t in Words)
        {
            ulong s = t.Start, hits = 0;
            bool ended = false;
            for (int i = 0; i < Math.Min(bytes.Length, PathMax - 1) && !ended; i++)
            {
                byte c = bytes[i];
                if (c == 0)
                    break;
                if (c == '/')
                    hits |= s & t.Tree;
                s = ((s & t.Adv[c]) << 1) | (s & t.Loop[c]);
                if (s == 0)
                    ended = true;
                s = Close(t, s);
            }
            if (!ended)
                hits |= s & t.Final;
            for (int p = 0; p < 64; p++)
                if ((hits & (1UL << p)) != 0 && t.Rule[p] != NoRule)
                    rules.Add(t.Rule[p]);
        }
        return rules;
    }
}
