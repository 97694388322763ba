"""Faces data: CelebA reading, MTCNN preparation, the prepared-faces store, synthetic faces and input pipelines."""
