using System.Buffers.Binary;
using System.Collections;
using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Mis.Gym;
using Mis.Gym.Envs;
using Mis.Gym.Spaces;
using Mis.Gym.Wrappers;
using Wire = Mis.Gym.V1;

namespace Mis.Gym.Server;

/// <summary>Between the in-process Gym types and the mis.gym.v1 messages.</summary>
public static class GymMapping
{
    /// <summary>A space as its message; any of Discrete, MultiDiscrete, Box.</summary>
    /// <exception cref="NotSupportedException">A space kind the contract has no message for.</exception>
    internal static Wire.Space ToProto(object space) => space switch
    {
        Discrete d => new Wire.Space { Discrete = new Wire.DiscreteSpace { N = d.N, Start = d.Start } },
        MultiDiscrete m => new Wire.Space { MultiDiscrete = new Wire.MultiDiscreteSpace { Nvec = { m.Nvec.Select(n => (long)n) } } },
        Box b => new Wire.Space { Box = new Wire.BoxSpace { Low = { b.Low }, High = { b.High }, Shape = { b.Shape.Select(n => (long)n) }, Dtype = "float32" } },
        _ => throw new NotSupportedException($"mis.gym.v1 has no message for a {space.GetType().Name} space"),
    };

    /// <summary>The element of a Discrete action space the request carries.</summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT: no action, an action of another kind, or one outside the space.</exception>
    internal static int ToDiscreteAction(Wire.Action? action, Space<int> space)
    {
        if (action is null || action.ValueCase == Wire.Action.ValueOneofCase.None)
            throw Invalid($"action is missing: set action.discrete to an element of {space}");
        if (action.ValueCase != Wire.Action.ValueOneofCase.Discrete)
            throw Invalid($"action.{Field(action.ValueCase)} was set, but the action space is {space}: set action.discrete");
        long value = action.Discrete;
        if (value is < int.MinValue or > int.MaxValue || !space.Contains((int)value))
            throw Invalid($"action {value} is not in the action space {space}");
        return (int)value;
    }

    /// <summary>
    /// Observations of equal length as the contract's packed bytes: float32, little-endian, row-major.
    /// </summary>
    internal static ByteString ToPackedFloats(float[][] observations)
    {
        int size = observations.Length == 0 ? 0 : observations[0].Length;
        var bytes = new byte[observations.Length * size * sizeof(float)];
        var span = bytes.AsSpan();
        for (int i = 0; i < observations.Length; i++)
        {
            var observation = observations[i];
            if (observation.Length != size)
                throw new InvalidOperationException($"sub-environment {i} returned {observation.Length} observation values, sub-environment 0 {size}");
            for (int j = 0; j < size; j++)
                BinaryPrimitives.WriteSingleLittleEndian(span[((i * size + j) * sizeof(float))..], observation[j]);
        }
        // The array is this message's alone from here on: wrapped, not copied.
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>
    /// A VectorStep's actions, one element of the Discrete action space per sub-environment.
    /// </summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT: not <paramref name="numEnvs"/> actions, or one outside the space (its index named).</exception>
    internal static int[] ToVectorActions(IReadOnlyList<long> actions, Space<int> space, int numEnvs)
    {
        if (actions.Count != numEnvs)
            throw Invalid($"expected {numEnvs} actions, one per sub-environment, got {actions.Count}");
        var result = new int[numEnvs];
        for (int i = 0; i < numEnvs; i++)
        {
            long value = actions[i];
            if (value is < int.MinValue or > int.MaxValue || !space.Contains((int)value))
                throw Invalid($"actions[{i}] = {value} is not in the action space {space}");
            result[i] = (int)value;
        }
        return result;
    }

    /// <summary>A vector reset's seed: sub-environment i gets seed + i, so seed + <paramref name="numEnvs"/> - 1 must fit in int32 too.</summary>
    internal static int? ToVectorSeed(long? seed, int numEnvs)
    {
        if (seed is not { } first)
            return null;
        // Compared without adding, which could overflow a long.
        return first >= int.MinValue && first <= int.MaxValue - (numEnvs - 1) ? (int)first
            : throw Invalid($"seed {first} does not fit: sub-environment i is reset with seed + i, and seed .. seed + {numEnvs - 1} " +
                            $"must fit in int32 ({int.MinValue}..{int.MaxValue})");
    }

    /// <summary>The seed of a reset request, checked to fit the environment's <see cref="int"/> seed.</summary>
    internal static int? ToSeed(Wire.ResetRequest request)
    {
        if (request.Seed is not { } seed)
            return null;
        return seed is >= int.MinValue and <= int.MaxValue ? (int)seed
            : throw Invalid($"seed {seed} does not fit in int32 ({int.MinValue}..{int.MaxValue})");
    }

    /// <summary>Reset options as the dictionary <see cref="IEnv{TObs, TAct}.Reset"/> takes (numbers are doubles, maps and lists nested).</summary>
    internal static IReadOnlyDictionary<string, object>? ToOptions(Struct? options) =>
        options is null || options.Fields.Count == 0 ? null
            : options.Fields.ToDictionary(f => f.Key, f => FromValue(f.Value, "options." + f.Key));

    /// <summary>An info dictionary as its message: known keys of the expected type in their fields, the rest in <c>extra</c>.</summary>
    internal static Wire.Info ToProto(Info info)
    {
        var message = new Wire.Info();
        Struct? extra = null;
        foreach (var (key, value) in info)
        {
            if (!SetKnown(message, key, value))
                (extra ??= new Struct()).Fields[key] = ToValue(value);
        }
        message.Extra = extra;
        return message;
    }

    private static bool SetKnown(Wire.Info m, string key, object value)
    {
        switch (key, value)
        {
            case ("scenario", string s): m.Scenario = s; return true;
            case ("backend", string s): m.Backend = s; return true;
            case ("action_names", IEnumerable<string> names): m.ActionNames.AddRange(names); return true;
            case ("observation_names", IEnumerable<string> names): m.ObservationNames.AddRange(names); return true;
            case ("defcon", int d): m.Defcon = d; return true;
            case ("violations", long v): m.Violations = v; return true;
            case ("action", string a): m.Action = a; return true;
            case ("result", ActionResult r): m.Result = ToProto(r); return true;
            case ("reason", string r): m.Reason = r; return true;
            case ("slowdown_ns", long ns): m.SlowdownNs = ns; return true;
            case ("time_ns", long ns): m.TimeNs = ns; return true;
            case ("reward_terms", RewardTerms t):
                m.RewardTerms = new Wire.RewardTerms { Task = t.Task, Slowdown = t.Slowdown, Denial = t.Denial, Kill = t.Kill, Anomaly = t.Anomaly };
                return true;
            case (RecordEpisodeStatistics<float[], int>.Key, EpisodeStatistics e):
                m.Episode = ToProto(e);
                return true;
            default:
                return false;
        }
    }

    /// <summary>The statistics of an ended episode, from the info of its last step when the env records them; else null.</summary>
    internal static Wire.EpisodeStatistics? EpisodeOf(Info info) =>
        info.TryGetValue(RecordEpisodeStatistics<float[], int>.Key, out var value) && value is EpisodeStatistics e ? ToProto(e) : null;

    private static Wire.EpisodeStatistics ToProto(EpisodeStatistics e) => new() { R = e.Return, L = e.Length, T = e.Time.TotalSeconds };

    private static Wire.ActionResult ToProto(ActionResult result) => result switch
    {
        ActionResult.Ok => Wire.ActionResult.Ok,
        ActionResult.Denied => Wire.ActionResult.Denied,
        ActionResult.Error => Wire.ActionResult.Error,
        ActionResult.Killed => Wire.ActionResult.Killed,
        _ => Wire.ActionResult.Unspecified,
    };

    // What JSON would make of it: strings, numbers, booleans, lists and maps as themselves, enums
    // by name, anything else by its text.
    private static Value ToValue(object? value) => value switch
    {
        null => Value.ForNull(),
        string s => Value.ForString(s),
        bool b => Value.ForBool(b),
        System.Enum e => Value.ForString(e.ToString()),
        sbyte or byte or short or ushort or int or uint or long or ulong or float or double or decimal =>
            Value.ForNumber(Convert.ToDouble(value, CultureInfo.InvariantCulture)),
        TimeSpan t => Value.ForNumber(t.TotalSeconds),
        IEnumerable<KeyValuePair<string, object>> map => Value.ForStruct(ToStruct(map)),
        IDictionary map => Value.ForStruct(ToStruct(map.Keys.Cast<object>().Select(k => new KeyValuePair<string, object>(k.ToString() ?? "", map[k]!)))),
        IEnumerable list => Value.ForList([.. list.Cast<object?>().Select(ToValue)]),
        _ => Value.ForString(value.ToString() ?? ""),
    };

    private static Struct ToStruct(IEnumerable<KeyValuePair<string, object>> map)
    {
        var result = new Struct();
        foreach (var (key, value) in map)
            result.Fields[key] = ToValue(value);
        return result;
    }

    private static object FromValue(Value value, string path) => value.KindCase switch
    {
        Value.KindOneofCase.NumberValue => value.NumberValue,
        Value.KindOneofCase.StringValue => value.StringValue,
        Value.KindOneofCase.BoolValue => value.BoolValue,
        Value.KindOneofCase.StructValue => value.StructValue.Fields.ToDictionary(f => f.Key, f => FromValue(f.Value, path + "." + f.Key)),
        Value.KindOneofCase.ListValue => value.ListValue.Values.Select((v, i) => FromValue(v, $"{path}[{i}]")).ToList(),
        _ => throw Invalid($"{path} is null (or unset): reset options take strings, numbers, booleans, lists and maps"),
    };

    private static string Field(Wire.Action.ValueOneofCase kind) => kind switch
    {
        Wire.Action.ValueOneofCase.MultiDiscrete => "multi_discrete",
        Wire.Action.ValueOneofCase.Box => "box",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
