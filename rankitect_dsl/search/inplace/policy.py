"""The one-shot search's policy (paper 3.2.2): one independent categorical per decision of the space, its
logits θ, and the two gradient estimators of Appendix A, on-policy REINFORCE (Eq. 3) and the off-policy
update from a replay buffer with weighted importance sampling (Eqs. 5–6)."""

from __future__ import annotations

import numpy as np
import torch

from ..constraints import valid_mask
from .gumbel import centred_logits, draw

IMPORTANCE_CLIP = 1e4  # Eq. 6's clip of w
START_SHARE = 0.25  # from an incumbent: each decision shaping it keeps its value with probability 1 - this
RESAMPLE_TRIES = 20


class Policy:
    """Logits (decisions × most options, padding at -inf). A draw that leaves every connection bit of a
    chosen multi-hot block off is drawn again (the space has no such arch); log-probabilities are those of
    the independent categoricals, without the rejection's normalising constant."""

    def __init__(self, space, lr: float, betas=(0.0, 0.999), centre=None):
        """`centre`: an incumbent's flat vector to start from (each decision that shapes its subnet keeps its
        value with probability 1 − `START_SHARE`); None: uniform over every decision."""
        self.space = space
        mutations = START_SHARE * int(space.relevance([centre])[0].sum()) if centre is not None else 0.0
        self.logits = centred_logits(space, centre, mutations).requires_grad_(True)
        self.rows = torch.arange(len(space.decisions))
        groups: dict = {}
        for i, d in enumerate(space.decisions):
            if d.kind == "input":
                groups.setdefault(d.choice, []).append(i)
        self.input_groups = list(groups.values())
        self.optimizer = torch.optim.Adam([self.logits], lr=lr, betas=betas)  # β1 = 0 for RL, as TuNAS

    def log_softmax(self) -> torch.Tensor:
        return torch.log_softmax(self.logits, -1)

    def sample(self, n: int, generator: torch.Generator) -> np.ndarray:
        """n flat vectors (Gumbel-max over every decision at once), each a valid arch."""
        out = np.empty((n, len(self.rows)), dtype=np.int64)
        todo = np.arange(n)
        for _ in range(RESAMPLE_TRIES):
            out[todo] = draw(self.logits.detach(), len(todo), generator)
            todo = todo[~valid_mask(self.space, out[todo])]
            if len(todo) == 0:
                return out
        out[todo] = self.repair(out[todo])
        return out

    def repair(self, vectors: np.ndarray) -> np.ndarray:
        """Turn on, where a chosen multi-hot block has no input, the connection bit most likely on."""
        vectors = np.array(vectors)
        if not self.input_groups:
            return vectors
        p_on = self.log_softmax().detach()[:, 1].numpy()
        for row in np.nonzero(~valid_mask(self.space, vectors))[0]:
            for cols in self.input_groups:
                if not vectors[row, cols].any():
                    vectors[row, max(cols, key=lambda i: p_on[i])] = 1
        return vectors

    def log_prob(self, vectors: np.ndarray) -> torch.Tensor:
        return self.log_softmax()[self.rows, torch.from_numpy(np.asarray(vectors))].sum(-1)

    def most_likely(self) -> np.ndarray:
        """γ(θ): each decision's most likely option, repaired to a valid arch."""
        return self.repair(self.logits.detach().argmax(-1).numpy()[None])[0]

    def entropies(self) -> list[float]:
        """Each decision's entropy in nats."""
        return self.entropy_tensor().tolist()

    def entropy_tensor(self) -> torch.Tensor:
        """Each decision's entropy in nats, on the policy's device."""
        return decision_entropies(self.log_softmax().detach())

    def entropy(self) -> float:
        return float(sum(self.entropies()))

    def on_policy_step(self, vectors: np.ndarray, rewards: np.ndarray) -> None:
        """Eq. 3: minimise E[R] by REINFORCE with the batch's mean reward as the baseline b."""
        advantage = torch.as_tensor(rewards - rewards.mean(), dtype=torch.float32)
        self._step((advantage * self.log_prob(vectors)).mean())

    def off_policy_step(self, vectors: np.ndarray, rewards: np.ndarray, old_log_probs: np.ndarray) -> None:
        """Eqs. 5–6: replayed samples (a', R', log P_θ'(a')) weighted by w = min(P_θ(a') / P_θ'(a'), 1e4),
        normalised by Σw, with b' = mean R'. The ratio is taken in log space, where Eq. 6's ε (a guard
        against dividing by a vanishing P_θ') is not needed: ours is 0."""
        log_p = self.log_prob(vectors)
        w = torch.exp(log_p.detach() - torch.as_tensor(old_log_probs, dtype=torch.float32)).clamp_max(IMPORTANCE_CLIP)
        advantage = torch.as_tensor(rewards - rewards.mean(), dtype=torch.float32)
        self._step(((w / w.sum()) * advantage * log_p).sum())

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def state_dict(self) -> dict:
        return {"logits": self.logits.detach().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.optimizer.load_state_dict(state["optimizer"])


class ReplayBuffer:
    """The last `size` on-policy samples: (a', the reward terms of a', log P_θ'(a')), θ' the policy that drew
    a'. A reward is kept as its terms (one column each), so replayed samples are scored with the weights of
    the update that replays them, not of the step that drew them."""

    def __init__(self, size: int, n_decisions: int, n_terms: int = 1):
        self.size = size
        self.vectors = np.zeros((0, n_decisions), dtype=np.int64)
        self.rewards = np.zeros((0, n_terms))
        self.log_probs = np.zeros(0)

    def __len__(self) -> int:
        return len(self.rewards)

    def add(self, vectors, rewards, log_probs) -> None:
        self.vectors = np.concatenate([self.vectors, vectors])[-self.size :]
        self.rewards = np.concatenate([self.rewards, np.asarray(rewards).reshape(len(vectors), -1)])[-self.size :]
        self.log_probs = np.concatenate([self.log_probs, log_probs])[-self.size :]

    def draw(self, n: int, rng: np.random.Generator):
        idx = rng.integers(len(self), size=n)
        return self.vectors[idx], self.rewards[idx], self.log_probs[idx]

    def state_dict(self) -> dict:
        """As tensors, so a checkpoint loads with `weights_only=True`."""
        return {
            "vectors": torch.from_numpy(self.vectors.copy()),
            "rewards": torch.from_numpy(self.rewards.copy()),
            "log_probs": torch.from_numpy(self.log_probs.copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["rewards"].dim() != 2 or state["rewards"].shape[1] != self.rewards.shape[1]:
            raise ValueError("the replay buffer holds rewards of another form")
        self.vectors, self.rewards, self.log_probs = (state[k].numpy() for k in ("vectors", "rewards", "log_probs"))


def decision_entropies(logp: torch.Tensor) -> torch.Tensor:
    """Each decision's entropy in nats, from its log-probabilities (padding at -inf), on their device."""
    p = logp.exp()
    return -(torch.where(p > 0, p * logp, torch.zeros_like(p))).sum(-1)
