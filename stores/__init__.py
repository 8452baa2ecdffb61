"""What stanch keeps outside Temporal, as libraries: the audit trail, the kill
switch and log level (toggles), evidence bundles, the policy file, the page
file sink and postmortem drafts. Activities wrap them for workflows; the
gateway and the CLI use them directly. Stores import models, never
activities, workflows or telemetry."""
