"""How the weights move besides the optimizer itself: learning-rate schedules
(``schedulers``, the ``scheduler/`` config group) and an exponential moving average of the
weights (``ema``, ``module.ema_decay``)."""
