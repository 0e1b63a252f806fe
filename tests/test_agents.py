import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure

from musicrl import agents
from musicrl.envs import EnvConfig, PreferenceSearchVecEnv
from musicrl.evaluation import evaluate_policy

ENV = EnvConfig(d=2, obs="BoardObs")


def _parameters(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


def test_ppo_configured_as_a2c_makes_the_same_update_as_a2c():
    """From the same parameters and the same rollout, one PPO update equals one A2C update."""
    config = agents.AgentConfig(algorithm="A2C", n_envs=4, n_steps=8, normalize=False, device="cpu")
    a2c = agents.make_agent(config, agents.make_training_env(ENV, config, seed=1), seed=5)
    ppo = agents.make_ppo_as_a2c(config, agents.make_training_env(ENV, config, seed=1), seed=5)
    before = _parameters(a2c)
    assert torch.equal(before, _parameters(ppo))
    a2c.learn(total_timesteps=config.steps_per_update)  # one rollout, one update
    ppo.rollout_buffer = a2c.rollout_buffer
    ppo.set_logger(configure(None, []))
    ppo.train()
    moved = _parameters(a2c) - before
    assert moved.abs().max() > 1e-4
    assert torch.allclose(_parameters(a2c), _parameters(ppo), atol=1e-6)


def test_truncation_is_reported_as_terminal_for_training():
    env = PreferenceSearchVecEnv(2, ENV, seed=0, truncation_as_terminal=True)
    env.reset()
    for _ in range(21):
        _, _, dones, infos = env.step(np.zeros(2, dtype=np.int64))
    assert dones.all() and not any(info["TimeLimit.truncated"] for info in infos)


@pytest.mark.parametrize("algorithm", agents.ALGORITHMS)
def test_every_algorithm_trains_and_evaluates(algorithm):
    from musicrl.agents import trained_policy

    config = agents.AgentConfig(algorithm=algorithm, n_envs=4, n_steps=8, device="cpu")
    env_config = EnvConfig(d=2, obs="GridObs" if algorithm == "RecurrentA2C" else "BoardObs")
    if algorithm == "Wolpertinger":
        env_config = EnvConfig(d=2, action="MultiDiscrete")
    env = agents.make_training_env(env_config, config, seed=0)
    model = agents.make_agent(config, env, seed=0)
    model.learn(total_timesteps=2 * config.steps_per_update)
    result = evaluate_policy(trained_policy(model, env, config), env_config)
    assert result.returns.shape == (25,) and 0 <= result.mean <= 210


def test_bad_agent_configuration_is_rejected():
    with pytest.raises(ValueError, match="unknown algorithm 'KFAC'; accepted: 'A2C', 'RecurrentA2C', 'GRUA2C', 'TRPO'"):
        agents.AgentConfig(algorithm="KFAC")
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        agents.AgentConfig(n_steps=0)


def test_entropy_trpo_without_entropy_is_sb3_contrib_trpo():
    """EntropyTRPO re-implements TRPO's update; with ent_coef=0 it must train exactly as TRPO does."""
    from dataclasses import replace as dc_replace

    from musicrl import registry
    from musicrl.agents import EntropyTRPO, make_agent, make_training_env

    spec = registry.run_spec("fig17-entropy", "smoke", 0)
    models = []
    for algorithm, coef in (("TRPO", 0.01), ("EntropyTRPO", 0.0)):
        agent = dc_replace(spec.agent, algorithm=algorithm, ent_coef=coef, n_envs=4, device="cpu")
        model = make_agent(agent, make_training_env(spec.env, agent, 0), seed=0)
        model.learn(6 * agent.steps_per_update)
        models.append(model)
    assert isinstance(models[1], EntropyTRPO)
    for a, b in zip(models[0].policy.parameters(), models[1].policy.parameters()):
        assert torch.equal(a, b)


def test_entropy_trpo_keeps_the_policy_stochastic():
    from dataclasses import replace as dc_replace

    import numpy as np

    from musicrl import registry
    from musicrl.agents import make_agent, make_training_env

    spec = registry.run_spec("fig17-entropy", "smoke", 0)
    entropies = {}
    for coef in (0.0, 0.5):
        agent = dc_replace(spec.agent, ent_coef=coef, n_envs=4, device="cpu")
        env = make_training_env(spec.env, agent, 0)
        model = make_agent(agent, env, seed=0)
        model.learn(40 * agent.steps_per_update)
        obs = torch.as_tensor(env.normalize_obs(env.unwrapped.reset()))
        with torch.no_grad():
            entropies[coef] = float(model.policy.get_distribution(obs).entropy().mean())
    assert entropies[0.5] > entropies[0.0]
    assert np.isfinite(list(entropies.values())).all()
