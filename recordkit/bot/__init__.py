"""The synthetic participant: test-pattern video and tone audio from one clock, with flash+beep sync marks.

`synthetic` makes the media, `marks` finds the marks again in whatever a server or recorder produced, `run` is
the `recordkit bot` command and its importable body `run_bot`. Import the submodules you need; this package
itself stays empty so importing it pulls in no media libraries.
"""
