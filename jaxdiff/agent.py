"""Old name of `jaxdiff.algorithm.Algorithm`, kept until every driver imports the new module (issue 10)."""
from jaxdiff.algorithm import Algorithm as OnlineAgent  # noqa: F401
