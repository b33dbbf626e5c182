# One image for every uma-health app; docker-compose.yml picks the command per service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY authz_server ./authz_server
COPY records_server ./records_server
COPY doctor_client ./doctor_client
COPY device_sim ./device_sim
COPY health_fhir ./health_fhir
COPY app_support ./app_support
COPY uma_demo ./uma_demo
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
EXPOSE 8400
CMD ["gunicorn", "--workers", "2", "--bind", "0.0.0.0:8400", "authz_server.wsgi:app"]
