"""What the built-in run metrics do: one module per metric of :mod:`qlandscape.runs.metric_specs` with its
``compute``, ``figures``, ``check_against_run`` and ``sweep_figures``. The specs name these functions by reference
(:func:`qlandscape.runs.metric_spec.hook`), so that this code, with torch, matplotlib and the metrics it imports,
is loaded only when a metric is computed, drawn or checked, never to list or parse the metrics."""
