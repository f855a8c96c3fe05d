"""CDK (Python) building blocks for Skyrelay on AWS: the ``SkyrelayGateway`` construct and the stacks of each pattern.

The app in ``infra/aws/app.py`` chooses a pattern from context; everything here is importable and synthesizable in
process (tests do exactly that, without the CDK CLI).
"""
