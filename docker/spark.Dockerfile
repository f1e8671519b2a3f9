# The ETL image (PLATFORM_SPARK_IMAGE: the SparkApplication's sparkImage.custom, productVersion 3.5.8): Stackable's
# Spark image plus the ETL's code at /opt/platform (mainApplicationFile local:///opt/platform/data_platform/etl.py,
# PYTHONPATH=/opt/platform) and the third-party modules the ETL imports besides pyspark: uv.lock's group
# `spark-image`, exported with hashes (pip refuses any other file). The contracts are not in the image: the
# SparkApplication mounts the platform-contracts ConfigMap (built from contracts/) at PLATFORM_CONTRACTS_DIR.
#
# Base: oci.stackable.tech/sdp/spark-k8s:<STACKABLE_SPARK_VERSION>-stackable<STACKABLE_VERSION> (manifests/versions.env).
# stackabletech/docker-images at tag 26.7.0 (2f37e3739ef098bbf68fab5c2af01795ba1993ce): spark-k8s/boil-config.toml
# builds 3.5.8 from spark-k8s/Dockerfile.3 with python-version 3.11 (UBI's python3.11 + python3.11-pip, linked as
# /usr/bin/python and /usr/bin/pip; PySpark itself on PYTHONPATH=$SPARK_HOME/python), runs as user 1000 (group 0);
# its CI tags images <version>-stackable<release>. stackabletech/spark-k8s-operator's supported-versions.adoc
# (../shared/specs/stackable/) lists 3.5.8 with Python 3.11, Java 17: the project's Python.
# Build from the repository root:
#   docker build -f docker/spark.Dockerfile -t ghcr.io/kfserve-bundle/platform-spark:0.1.0 .

# The pinned requirements, from the lock only (--frozen: the build fails if the lock is stale).
FROM python:3.11.11-slim-bookworm AS requirements
WORKDIR /src
RUN pip install --no-cache-dir uv==0.13.8
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --only-group spark-image --no-emit-project --quiet --output-file /requirements.txt

FROM oci.stackable.tech/sdp/spark-k8s:3.5.8-stackable26.7.0
# Root only to install into the image's Python (system site-packages: found whatever PYTHONPATH the job sets).
USER 0
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --no-deps --require-hashes -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
# What the ETL imports; nothing else (tests/cluster/test_spark_image.py drops each line in turn).
COPY data_platform/ /opt/platform/data_platform/
COPY platform_core/ /opt/platform/platform_core/
# The state dir (get_session's spark.log) must be writable by the job's user; /opt/platform is root's.
ENV PLATFORM_PROFILE=cluster \
    PLATFORM_STATE_DIR=/tmp/platform
USER 1000
