using Mis.Enforcer.Policy;
using Mis.Gym.Scenarios;
using PolicyVerdict = Mis.Enforcer.Policy.Verdict;

namespace Mis.Gym.Envs;

/// <summary>
/// The policy's verdict for every (action, DEFCON level) pair of a scenario, computed once by the
/// real deciders: <see cref="WorkloadPolicy.Explain"/> for files and execs, <see cref="NetRuleMatcher"/>
/// for the network. Memoising is exact, not an approximation: a scenario's actions are fixed
/// requests, path rules depend on nothing but the request and the level, and scenarios refuse
/// inode rules (the only time-dependent ones, through their TTLs). It turns a regex-matching
/// policy walk of microseconds into an array read, which is what lets the simulator run millions
/// of steps a second.
/// </summary>
public sealed class DecisionTable
{
    private readonly PolicyVerdict[] _verdicts;
    private readonly string[] _reasons;

    internal DecisionTable(ActionScenario scenario)
    {
        var net = NetRuleMatcher.For(scenario);
        int n = scenario.Actions.Count;
        _verdicts = new PolicyVerdict[n * 5];
        _reasons = new string[n * 5];
        for (int a = 0; a < n; a++)
        {
            var action = scenario.Actions[a];
            for (int level = 1; level <= 5; level++)
            {
                (PolicyVerdict verdict, string reason) = action.Kind switch
                {
                    ActionKind.Read or ActionKind.List => scenario.Policy.Explain(new FileRequest(FileOp.Read, action.Path!, 0, 0), level),
                    ActionKind.Write => scenario.Policy.Explain(new FileRequest(FileOp.Write, action.Path!, 0, 0), level),
                    ActionKind.Exec => scenario.Policy.Explain(new FileRequest(FileOp.Exec, action.Path!, 0, 0), level),
                    ActionKind.Connect or ActionKind.Send => net.Decide(action.Address!, action.Port, action.Protocol, level, scenario.Defcon.NetLockdownLevel),
                    _ => (PolicyVerdict.Allow, $"{action.Kind.Word()}: nothing for the policy to decide"),
                };
                _verdicts[a * 5 + level - 1] = verdict;
                _reasons[a * 5 + level - 1] = reason;
            }
        }
    }

    /// <summary>The verdict for action <paramref name="action"/> at DEFCON <paramref name="level"/> (1..5).</summary>
    internal PolicyVerdict Verdict(int action, int level) => _verdicts[action * 5 + level - 1];

    /// <summary>The rule or level behind <see cref="Verdict"/>.</summary>
    internal string Reason(int action, int level) => _reasons[action * 5 + level - 1];
}
