"""The built-in benchmark: procedurally rendered scenes with captions, modifications and dialogues."""
