"""``depthbench lesson``: every claim of the lesson as runs, a criterion stated in advance and a
verdict, in one pipeline: claims (``claims``, from ``conf/lesson/<claim>.yaml``) -> processes
(``jobs``) -> measurements (``run_measures``, ``measures_without_runs``) -> verdicts
(``verdicts``, ``demonstration_verdicts``, judged by ``decide``) -> the page (``page``,
``figures``). Each claim's YAML names its functions by dotted path."""
