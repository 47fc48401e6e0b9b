using System.Reflection;
using System.Runtime.InteropServices;
using Mis.Enforcer.Bpf;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Native.Bpf;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>
/// The C# mirrors in Kernel/KernelAbi.cs against the compiled object's BTF: every struct of
/// bpf/include/mis_shared.h must have the same size, the same fields at the same offsets with
/// the same sizes, and every enum the same enumerators. Opening an object parses it without
/// the kernel, so this runs without root.
/// </summary>
public sealed unsafe class KernelStructLayoutTests
{
    private const uint KindStruct = 4;
    private const uint KindEnum = 6;

    public static TheoryData<string, Type> Structs => new()
    {
        { "mis_defcon_config", typeof(MisDefconConfig) },
        { "mis_cgroup_state", typeof(MisCgroupState) },
        { "mis_event", typeof(MisEvent) },
        { "mis_report_ctx", typeof(MisReportCtx) },
        { "mis_net_key", typeof(MisNetKey) },
        { "mis_net_value", typeof(MisNetValue) },
        { "mis_exec_key", typeof(MisExecKey) },
        { "mis_exec_approval", typeof(MisExecApproval) },
        { "mis_unix_key", typeof(MisUnixKey) },
        { "mis_glob_key", typeof(MisGlobKey) },
        { "mis_glob_word", typeof(MisGlobWord) },
        { "mis_glob_match_ctx", typeof(MisGlobMatchCtx) },
        { "mis_rule_set", typeof(MisRuleSet) },
        { "mis_file_policy", typeof(MisFilePolicy) },
        { "mis_exact_key", typeof(MisExactKey) },
        { "mis_object_key", typeof(MisObjectKey) },
        { "mis_inode_key", typeof(MisInodeKey) },
    };

    public static TheoryData<string, Type, string> Enums => new()
    {
        { "mis_op", typeof(ViolationOp), "MIS_OP_" },
        { "mis_decision", typeof(Verdict), "MIS_DECISION_" },
        { "mis_cgroup_flags", typeof(MisCgroupFlags), "MIS_CG_" },
        { "mis_event_type", typeof(KernelEventType), "MIS_EV_" },
        { "mis_command", typeof(MisCommand), "MIS_CMD_" },
        { "mis_decided_by", typeof(MisDecidedBy), "MIS_DECIDED_" },
        { "mis_result", typeof(MisResult), "MIS_RESULT_" },
        { "mis_stat", typeof(MisStat), "MIS_STAT_" },
    };

    [Theory]
    [MemberData(nameof(Structs))]
    public void Struct_matches_its_csharp_mirror(string cName, Type mirror)
    {
        using var obj = OpenObject();
        nint btf = Libbpf.ObjectBtf(obj.Handle);
        Assert.NotEqual(0, btf);
        int id = Libbpf.BtfFindByNameKind(btf, cName, KindStruct);
        Assert.True(id > 0, $"struct {cName} is not in the object's BTF (is it used by a map or a BTF anchor in mis_maps.h?)");
        uint* type = (uint*)Libbpf.BtfTypeById(btf, (uint)id);
        uint info = type[1];
        Assert.Equal(Marshal.SizeOf(mirror), (int)type[2]);

        int vlen = (int)(info & 0xffff);
        bool kflag = (info >> 31) != 0;
        var csFields = mirror.GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);
        var cNames = new List<string>();
        uint* member = type + 3;
        for (int i = 0; i < vlen; i++, member += 3)
        {
            string name = Marshal.PtrToStringUTF8(Libbpf.BtfNameByOffset(btf, member[0]))!;
            cNames.Add(name);
            uint bitOffset = kflag ? member[2] & 0xffffff : member[2];
            Assert.True(bitOffset % 8 == 0, $"{cName}.{name} is a bitfield; the contract allows none");
            string csName = Pascal(name);
            var field = mirror.GetField(csName, BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);
            Assert.True(field is not null, $"{mirror.Name} has no field {csName} for {cName}.{name}");
            Assert.True((int)(bitOffset / 8) == (int)Marshal.OffsetOf(mirror, csName),
                $"{cName}.{name} is at offset {bitOffset / 8} in C but {Marshal.OffsetOf(mirror, csName)} in {mirror.Name}.{csName}");
            long cSize = Libbpf.BtfResolveSize(btf, member[1]);
            Assert.True(cSize == Marshal.SizeOf(field!.FieldType),
                $"{cName}.{name} is {cSize} bytes in C but {Marshal.SizeOf(field.FieldType)} in {mirror.Name}.{csName}");
        }
        Assert.Equal(cNames.Select(Pascal).Order(), csFields.Select(f => f.Name).Order());
    }

    [Theory]
    [MemberData(nameof(Enums))]
    public void Enum_matches_its_csharp_mirror(string cName, Type mirror, string prefix)
    {
        using var obj = OpenObject();
        nint btf = Libbpf.ObjectBtf(obj.Handle);
        int id = Libbpf.BtfFindByNameKind(btf, cName, KindEnum);
        Assert.True(id > 0, $"enum {cName} is not in the object's BTF (is its anchor in mis_maps.h?)");
        uint* type = (uint*)Libbpf.BtfTypeById(btf, (uint)id);
        int vlen = (int)(type[1] & 0xffff);
        var seen = new HashSet<string>();
        uint* value = type + 3;
        for (int i = 0; i < vlen; i++, value += 2)
        {
            string name = Marshal.PtrToStringUTF8(Libbpf.BtfNameByOffset(btf, value[0]))!;
            Assert.StartsWith(prefix, name);
            string csName = Pascal(name[prefix.Length..]);
            if (csName == "None" && !Enum.GetNames(mirror).Contains("None"))
                continue; // MIS_OP_NONE: "no operation" is not a violation kind in C#
            Assert.True(Enum.TryParse(mirror, csName, out var csValue), $"{mirror.Name} has no member {csName} for {name}");
            Assert.True(Convert.ToInt64(csValue) == (int)value[1], $"{name} = {(int)value[1]} in C but {mirror.Name}.{csName} = {Convert.ToInt64(csValue)}");
            seen.Add(csName);
        }
        var extra = Enum.GetNames(mirror).Where(n => n != "None" && !seen.Contains(n)).ToList();
        Assert.True(extra.Count == 0, $"{mirror.Name} has members C's {cName} lacks: {string.Join(", ", extra)}");
    }

    [Fact]
    public void Header_constants_match()
    {
        Assert.Equal(MisEvent.HeaderSize, (int)Marshal.OffsetOf<MisEvent>(nameof(MisEvent.Target)));
        int fixedBits = ((int)Marshal.OffsetOf<MisNetKey>(nameof(MisNetKey.Addr)) - (int)Marshal.OffsetOf<MisNetKey>(nameof(MisNetKey.PolicyId))) * 8;
        Assert.Equal((int)MisNetKey.FixedPrefix, fixedBits);
    }

    [Fact]
    public void Defines_that_shape_the_defcon_view_match()
    {
        string shared = File.ReadAllText(Path.Combine(ConfinementHarness.RepoRoot(), "bpf", "include", "mis_shared.h"));
        string maps = File.ReadAllText(Path.Combine(ConfinementHarness.RepoRoot(), "bpf", "include", "mis_maps.h"));
        Assert.Equal(MisDefconView.LevelBits, Define(shared, "MIS_VIEW_LEVEL_BITS"));
        Assert.Equal(MisDefconView.GenBits, Define(shared, "MIS_VIEW_GEN_BITS"));
        Assert.Equal(KernelEnforcer.MaxCgroups, Define(maps, "MIS_MAX_CGROUPS"));
    }

    [Fact]
    public void Defines_that_shape_the_path_glob_automata_match()
    {
        string shared = File.ReadAllText(Path.Combine(ConfinementHarness.RepoRoot(), "bpf", "include", "mis_shared.h"));
        Assert.Equal(PathAutomaton.PathMax, Define(shared, "MIS_PATH_MAX"));
        Assert.Equal(PathAutomaton.MaxWords, Define(shared, "MIS_GLOB_WORDS"));
        Assert.Equal(PathAutomaton.ClosureSteps, Define(shared, "MIS_GLOB_CLOSURE_STEPS"));
        Assert.Equal(PathAutomaton.NoRule, Define(shared, "MIS_GLOB_NO_RULE"));
    }

    private static int Define(string header, string name)
    {
        var match = System.Text.RegularExpressions.Regex.Match(header, $@"#define\s+{name}\s+(\d+)");
        Assert.True(match.Success, $"#define {name} not found");
        return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static BpfObject OpenObject()
    {
        bool embedded = EmbeddedBpf.TryLoad(KernelEnforcer.ObjectName, out var elf, out var why);
        HostRequirements.That(embedded, why);
        return BpfObject.Open(elf, "mis_enforcer_layout");
    }

    // "slowdown_ns_total" -> "SlowdownNsTotal", "FILE_READ" -> "FileRead", "kill_at_level_1" -> "KillAtLevel1".
    private static string Pascal(string snake) =>
        string.Concat(snake.Split('_', StringSplitOptions.RemoveEmptyEntries)
            .Select(part => char.ToUpperInvariant(part[0]) + part[1..].ToLowerInvariant()));
}
