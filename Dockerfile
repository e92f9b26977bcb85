FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DIGEST_NO_BOOTSTRAP=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY digest ./digest
COPY papers ./papers
RUN pip install --no-cache-dir ".[amazon-ses]"   # the image serves every EMAIL_PROVIDER
COPY . .
RUN DEBUG=false SECRET_KEY=build-only python manage.py collectstatic --noinput
RUN useradd --create-home app && mkdir -p /app/var && chown app /app/var
USER app
EXPOSE 8000
CMD ["gunicorn", "digest.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--preload", "--access-logfile", "-"]
