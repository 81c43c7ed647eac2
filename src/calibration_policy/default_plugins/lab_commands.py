"""The policy lab's commands: replay, compare, tune, and the policy's versions."""
