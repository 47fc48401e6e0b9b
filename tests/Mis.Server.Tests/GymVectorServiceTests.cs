using System.Runtime.InteropServices;
using Grpc.Core;
using Mis.Gym;
using Mis.Gym.Envs;
using Mis.Gym.Server;
using Mis.Gym.Vector;
using Wire = Mis.Gym.V1;

namespace Mis.Server.Tests;

/// <summary>mis.gym.v1's vectors (VectorReset, VectorStep) through the C# client: the in-process vector's results, and every refusal with its reason.</summary>
public sealed class GymVectorServiceTests
{
    private const string Scenario = "data-shortcut";
    // data-shortcut's actions, by index.
    private const int PeekAnswers = 4, Wait = 6, Submit = 7;

    [Fact]
    public async Task A_seeded_vector_over_gRPC_is_the_in_process_SyncVectorEnv_step_for_step_autoresets_included()
    {
        await using var gym = await GymTestServer.StartAsync();
        const int n = 5;
        string file = Path.Combine(GymTestServer.ShippedScenarios, Scenario + ".toml");
        using var local = new SyncVectorEnv<float[], int>([.. Enumerable.Repeat<Func<IEnv<float[], int>>>(() => MisGym.Make(file), n)]);

        var made = await VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = n, Seed = 21 });
        var expectedReset = local.Reset(21);

        Assert.Equal((Scenario, "sim", n), (made.Scenario, made.Backend, made.NumEnvs));
        Assert.Equal(GymMapping.ToProto(local.SingleObservationSpace), made.ObservationSpace);
        Assert.Equal(GymMapping.ToProto(local.SingleActionSpace), made.ActionSpace);
        Assert.Equal(expectedReset.Observations, Rows(made.Observations, n));
        Assert.Empty(made.Infos); // not asked for
        var agent = new Random(6);
        int autoresets = 0;
        for (int t = 0; t < 100; t++)
        {
            int[] actions = [.. Enumerable.Range(0, n).Select(_ => agent.Next(Submit + 1))];
            var expected = local.Step(actions);
            var step = await VectorStepAsync(gym, made.VectorId, actions);
            Assert.Equal(expected.Observations, Rows(step.Observations, n));
            Assert.Equal(expected.Rewards, step.Rewards);
            Assert.Equal(expected.Terminated, step.Terminated);
            Assert.Equal(expected.Truncated, step.Truncated);
            Assert.Empty(step.Episodes); // made without record_episode_statistics
            autoresets += expected.Infos.Count(i => i.ContainsKey("observation_names")); // a reset's info
        }
        Assert.True(autoresets > 10, $"{autoresets} autoresets");
    }

    [Fact]
    public async Task Infos_come_when_asked_for_and_episode_statistics_on_the_ending_step_only()
    {
        await using var gym = await GymTestServer.StartAsync();
        var made = await VectorResetAsync(gym, new Wire.VectorResetRequest
        {
            Scenario = Scenario,
            NumEnvs = 3,
            RecordEpisodeStatistics = true,
            Seed = 0,
            Infos = true,
        });
        Assert.Equal(3, made.Infos.Count);
        Assert.All(made.Infos, i => Assert.Equal(Scenario, i.Scenario));

        var first = await VectorStepAsync(gym, made.VectorId, [Submit, Wait, PeekAnswers], infos: true);
        Assert.Equal([true, false, false], first.Terminated);
        Assert.Equal(["submit", "wait", "peek_answers"], first.Infos.Select(i => i.Action));
        var episode = Assert.Single(first.Episodes);
        Assert.Equal(0, episode.Env);
        Assert.Equal(1, episode.Statistics.L);
        Assert.Equal(first.Rewards[0], episode.Statistics.R);

        var second = await VectorStepAsync(gym, made.VectorId, [Submit, Wait, PeekAnswers]);
        Assert.Empty(second.Infos); // not asked for this time
        Assert.Equal(0.0, second.Rewards[0]); // sub-env 0 was reset, its submit ignored
        Assert.Equal([false, false, false], second.Terminated);
        Assert.Empty(second.Episodes);
    }

    [Fact]
    public async Task Bad_vector_requests_are_INVALID_ARGUMENT_with_the_reason()
    {
        await using var gym = await GymTestServer.StartAsync(o => o with { MaxVectorEnvs = 8, AllowedBackends = ["sim", "kernel"] });
        var made = await VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 4 });
        var single = await gym.MakeAsync();

        var cases = new (Func<Task> Call, string Reason)[]
        {
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 0 }), "num_envs 0 is out of range: a vector on this server has 1..8"),
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 9 }), "num_envs 9 is out of range"),
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 2, Backend = "kernel" }), "vectors run on the sim backend only"),
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 2, Backend = "gpu" }), "unknown backend \"gpu\""),
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = "../x", NumEnvs = 2 }), "leaves the scenarios directory"),
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 4, Seed = int.MaxValue - 2 }), "seed .. seed + 3 must fit in int32"),
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { VectorId = made.VectorId, NumEnvs = 4 }), "leave scenario, backend, num_envs and record_episode_statistics unset"),
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { VectorId = made.VectorId, Seed = long.MaxValue }), "does not fit"),
            (() => VectorStepAsync(gym, made.VectorId, [Wait, Wait, Wait]), "expected 4 actions, one per sub-environment, got 3"),
            (() => VectorStepAsync(gym, made.VectorId, [Wait, Wait, 8, Wait]), "actions[2] = 8 is not in the action space Discrete(8)"),
            (() => VectorStepAsync(gym, made.VectorId, [Wait, -1, Wait, Wait]), "actions[1] = -1 is not in the action space"),
            (() => VectorStepAsync(gym, "", [Wait]), "vector_id is empty: pass the id VectorReset returned"),
            (() => VectorStepAsync(gym, single.EnvId, [Wait]), "is a single environment (Make made it)"),
            (() => VectorResetAsync(gym, new Wire.VectorResetRequest { VectorId = single.EnvId }), "is a single environment"),
            (() => gym.StepAsync(made.VectorId, Wait), "is a vector (VectorReset made it)"),
            (() => gym.ResetAsync(made.VectorId), "is a vector"),
        };
        foreach (var (call, reason) in cases)
        {
            var e = await Assert.ThrowsAsync<RpcException>(call);
            Assert.True(e.StatusCode == StatusCode.InvalidArgument, $"{reason}: {e.Status}");
            Assert.Contains(reason, e.Status.Detail);
        }
        Assert.Equal(2, gym.Host.Envs.Count); // no refused request left a vector behind
        Assert.Equal(4, (await VectorStepAsync(gym, made.VectorId, [Wait, Wait, Wait, Wait])).Rewards.Count); // nor disturbed this one
    }

    [Fact]
    public async Task A_vector_counts_once_against_the_cap_and_Close_releases_it()
    {
        await using var gym = await GymTestServer.StartAsync(o => o with { MaxEnvs = 2 });
        var vector = await VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 64 });
        await gym.MakeAsync();
        var full = await Assert.ThrowsAsync<RpcException>(() => VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 1 }));
        Assert.Equal(StatusCode.ResourceExhausted, full.StatusCode);

        var spaces = await gym.Client.SpacesAsync(new Wire.SpacesRequest { EnvId = vector.VectorId }, cancellationToken: Ct);
        Assert.Equal(vector.ObservationSpace, spaces.ObservationSpace); // one sub-environment's
        await gym.Client.CloseAsync(new Wire.CloseRequest { EnvId = vector.VectorId }, cancellationToken: Ct);
        Assert.Equal(1, gym.Host.Envs.Count);
        var gone = await Assert.ThrowsAsync<RpcException>(() => VectorStepAsync(gym, vector.VectorId, new int[64]));
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        Assert.Contains($"no environment \"{vector.VectorId}\"", gone.Status.Detail);
        await VectorResetAsync(gym, new Wire.VectorResetRequest { Scenario = Scenario, NumEnvs = 1 });
    }

    [Fact]
    public void Packed_observations_are_little_endian_float32_rows()
    {
        var packed = GymMapping.ToPackedFloats([[1f, -2.5f], [float.PositiveInfinity, 0.125f]]);

        Assert.Equal(16, packed.Length);
        Assert.Equal([0x00, 0x00, 0x80, 0x3f], packed.Span[..4].ToArray()); // 1.0f, least significant byte first
        Assert.Equal([1f, -2.5f, float.PositiveInfinity, 0.125f], Floats(packed));
        Assert.Throws<InvalidOperationException>(() => GymMapping.ToPackedFloats([[1f], [1f, 2f]]));
    }

    private static async Task<Wire.VectorResetResponse> VectorResetAsync(GymTestServer gym, Wire.VectorResetRequest request) =>
        await gym.Client.VectorResetAsync(request, cancellationToken: Ct);

    private static async Task<Wire.VectorStepResponse> VectorStepAsync(GymTestServer gym, string id, int[] actions, bool infos = false) =>
        await gym.Client.VectorStepAsync(new Wire.VectorStepRequest { VectorId = id, Actions = { actions.Select(a => (long)a) }, Infos = infos }, cancellationToken: Ct);

    // The test host is little-endian (x86-64, arm64), so the bytes can be read in place.
    private static float[] Floats(Google.Protobuf.ByteString bytes) => MemoryMarshal.Cast<byte, float>(bytes.Span).ToArray();

    private static float[][] Rows(Google.Protobuf.ByteString bytes, int n)
    {
        var flat = Floats(bytes);
        int size = flat.Length / n;
        return [.. Enumerable.Range(0, n).Select(i => flat[(i * size)..((i + 1) * size)])];
    }
}
