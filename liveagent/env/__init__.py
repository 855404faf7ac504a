"""The learning environment (numpy + gymnasium): AccompanimentEnv, the vector env, rewards, metrics, eval."""
