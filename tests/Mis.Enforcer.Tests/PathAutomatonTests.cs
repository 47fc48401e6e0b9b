using System.Text;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Tests;

/// <summary>
/// The kernel's path-glob matcher (bpf/include/mis_path_match.h, compiled by PathAutomaton) must
/// mean what PathGlob means, path for path: the in-kernel file backend decides with it, and a
/// pattern that matched differently there would be a rule that holds under one backend only.
/// </summary>
[Collection("kernel")]
public sealed class PathAutomatonTests
{
    /// <summary>Every built-in pattern, and patterns that use each element in awkward places.</summary>
    private static readonly string[] Patterns =
    [
        .. BuiltinPolicy.FileRules.Select(r => r.Pattern),
        "/**", "/a/**", "/a/**/b", "/**/b", "/a/**b", "/a**", "/a/*/b/**", "/**/**/x", "/a/?", "/a/??c",
        "/a/[abc]", "/a/[!abc]x", "/a/[a-c]*", "/a/[-a]", "/a/*.pub", "/home/*/.ssh/id_*", "/é/*", "/a/?/**",
        "/data/private/**", "/a/b", "/a/b/", "/tmp/*/x*y*z",
    ];

    [Fact]
    public void The_compiled_automata_match_exactly_the_paths_the_patterns_match()
    {
        var globs = Patterns.Select(Glob).ToList();
        var automaton = PathAutomaton.Compile(globs.Select((g, i) => (i, g)));
        int matches = 0;
        foreach (string path in Paths(seed: 7, count: 4000))
        {
            var expected = Expected(globs, path);
            Assert.Equal(expected, automaton.Match(path));
            matches += expected.Count;
        }
        Assert.True(matches > 2000, $"the corpus must exercise matches, not only misses ({matches} matches)");
    }

    [Fact]
    public void The_kernel_matcher_agrees_with_the_patterns_path_for_path()
    {
        using var kernel = KernelTest.Open();
        var globs = Patterns.Select(Glob).ToList();
        const uint policyId = 4242;
        kernel.SetGlobs(policyId, PathAutomaton.Compile(globs.Select((g, i) => (i, g))));
        int matches = 0;
        foreach (string path in Paths(seed: 11, count: 1500))
        {
            var expected = Expected(globs, path);
            Assert.Equal(expected, kernel.KernelGlobMatch(policyId, path));
            matches += expected.Count;
        }
        Assert.True(matches > 700, $"{matches} matches");
        // Another policy's globs are not this one's; removed globs match nothing.
        Assert.Empty(kernel.KernelGlobMatch(policyId + 1, "/etc/shadow"));
        kernel.SetGlobs(policyId, null);
        Assert.Empty(kernel.KernelGlobMatch(policyId, "/etc/shadow"));
    }

    [Fact]
    public void Patterns_the_kernel_matcher_cannot_hold_are_refused_with_the_reason()
    {
        var tooLong = Glob("/" + new string('a', 70) + "*");
        Assert.Contains("positions", Assert.Throws<NotSupportedException>(() => PathAutomaton.Compile([(0, tooLong)])).Message);
        Assert.Contains("non-ASCII", Assert.Throws<NotSupportedException>(() => PathAutomaton.Compile([(0, Glob("/a/[é]"))])).Message);
        var many = Enumerable.Range(0, 40).Select(i => (i, Glob($"/some/long/directory/name/{i}/*")));
        Assert.Contains("room", Assert.Throws<NotSupportedException>(() => PathAutomaton.Compile(many)).Message);
    }

    [Fact]
    public void A_newline_in_a_name_neither_escapes_a_tree_rule_nor_matches_an_exact_one()
    {
        Assert.True(Glob("/data/private/**").Matches("/data/private/x\ny"));
        Assert.True(Glob("/a/**/b").Matches("/a/x\n/b"));
        Assert.False(Glob("/etc/shadow").Matches("/etc/shadow\n"));
    }

    private static IReadOnlySet<int> Expected(List<PathGlob> globs, string path)
    {
        // The kernel sees at most PathMax - 1 bytes; the corpus stays below that.
        Assert.True(Encoding.UTF8.GetByteCount(path) < PathAutomaton.PathMax);
        return new SortedSet<int>(Enumerable.Range(0, globs.Count).Where(i => globs[i].Matches(path)));
    }

    /// <summary>
    /// Paths that hit: each pattern with its wildcards filled in at random (sometimes empty,
    /// sometimes with '/', newlines or multi-byte characters); and paths that nearly hit: those
    /// with one character dropped, doubled or changed, or a segment added.
    /// </summary>
    private static IEnumerable<string> Paths(int seed, int count)
    {
        var random = new Random(seed);
        string[] fill = ["", "x", "ab", "a/b", "/", "é", "\n", ".", "ssh", "b", "c", "-", "日本", "id_rsa", "a.pub"];
        for (int n = 0; n < count; n++)
        {
            string pattern = Patterns[random.Next(Patterns.Length)];
            var path = new StringBuilder();
            for (int i = 0; i < pattern.Length; i++)
            {
                char c = pattern[i];
                if (c == '[')
                {
                    int close = pattern.IndexOf(']', i);
                    path.Append("abcxz-!"[random.Next(7)]);
                    i = close;
                }
                else if (c is '*' or '?')
                {
                    path.Append(fill[random.Next(fill.Length)]);
                }
                else
                {
                    path.Append(c);
                }
            }
            string s = path.ToString();
            switch (random.Next(6))
            {
                case 0 when s.Length > 1:
                    s = s.Remove(random.Next(s.Length), 1);
                    break;
                case 1 when s.Length > 1:
                    int at = random.Next(s.Length);
                    s = s.Insert(at, s[at].ToString());
                    break;
                case 2:
                    s += "/" + fill[random.Next(fill.Length)];
                    break;
                case 3 when s.Length > 1:
                    var chars = s.ToCharArray();
                    chars[random.Next(chars.Length)] = "a/.\né"[random.Next(5)];
                    s = new string(chars);
                    break;
            }
            if (!s.StartsWith('/'))
                s = "/" + s;
            yield return s;
        }
    }

    private static PathGlob Glob(string pattern) =>
        PathGlob.TryParse(pattern, out var glob, out var error) ? glob! : throw new InvalidOperationException(error);
}
