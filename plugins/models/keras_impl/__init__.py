"""Keras 3 (TensorFlow backend) builds of the authors' five models, ``wang2019`` variants.

FishInMedi/CRNN-TF (the code behind Wang et al., IJCNN 2019) built every model in Keras 2; these
modules rebuild them layer for layer in Keras 3, keeping Keras 2 semantics where Keras 3 changed
a default (``GRU(reset_after=False)`` with Keras 2's hard sigmoid 0.2·x + 0.5). Each model module
has a builder ``build_keras_<model>(input_shape, n_outputs, *, variant="wang2019", ...)`` that
takes the channels-first input shape the harness stores (``(1, 96, T)``, batch axis excluded),
transposes to channels-last as its first layer and returns logits, like the torch ports. Each
also has ``torch_to_keras`` / ``keras_to_torch`` to copy weights between the two ports.

Importing this package imports TensorFlow (through :func:`mcbench.keras_learner.load_keras`,
which keeps TensorFlow's start-up log lines off the console).
"""
