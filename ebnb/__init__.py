"""ebnb: Early-Bird tickets in deep RL, reproduced (batched DQN populations, masks, experiments)."""
