# pgworker with the metrics extra and the example tasks: the demo worker of compose.yaml.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-cache-dir '.[metrics]'
COPY examples ./examples
ENV PYTHONPATH=/app/examples
USER nobody
CMD ["pgworker", "work", "--app", "demo_tasks", "--metrics-port", "9100"]
