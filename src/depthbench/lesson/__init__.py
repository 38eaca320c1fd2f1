"""``depthbench lesson``: every claim of the lesson as runs, a criterion stated in advance and a
verdict (``conf/lesson/<claim>.yaml`` holds each claim, ``verdicts.py`` its check)."""
