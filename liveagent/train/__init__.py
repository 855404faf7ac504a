"""The torch world: networks, MLE pretraining, DQN, actor-critic, reward models, export to ONNX."""
